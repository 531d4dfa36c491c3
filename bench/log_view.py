"""1,000,000 lines streamed into the log pane of a running app: memory, ingest, key latency.

    .venv/bin/python bench/log_view.py [--lines 1000000] [--batch 2000] [--rate 100000]

A producer thread appends realistic kamal-proxy lines to the selected deploy's spool in batches
(as the SSH watcher does), paced at --rate lines/s (a fast SSH stream; raw asyncssh manages about
230,000/s), and announces each batch through the service's updates. Meanwhile
keys are pressed in the log pane (alternately up and down) and each press is timed until the
app has processed it and is idle again. RSS is sampled from /proc every 20 ms. Prints lines/s,
the latency percentiles, then `log_view_rss_growth_mib=<peak growth>` and
`log_view_p99_ms=<p99>` (targets ≤ 150 MiB and ≤ 100 ms).

Then, over the whole spool: `s` (source filter) and `F` (fold groups) pressed in turn, each
followed by up/down keys while that filter runs; every key is timed from the press to the
screen refreshed with its effect (the filter named in the pane, the view moved). Prints how long
a filter of the whole log took, then last `log_filter_p99_ms=<p99>` (target ≤ 100).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.config import parse_config
from vmkit_tui.domain.models import Deploy, EventKind, NewEvent, Status, Trigger
from vmkit_tui.domain.updates import LogGrew
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.frontends.tui.log_pane import LogPane
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import LogRecord, SpoolWriter

DEPLOY_ID = "0123456789ab"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def seed(folder: Path) -> DeployService:
    deploy = Deploy(
        DEPLOY_ID,
        "acme/storefront",
        "production",
        "ab" * 20,
        Trigger.PUSH,
        "octocat",
        START,
        1,
        "https://github.com/acme/storefront/actions/runs/1",
    )
    events = [
        NewEvent(DEPLOY_ID, EventKind.CREATED, START, data={"title": "Flood of logs"}),
        NewEvent(DEPLOY_ID, EventKind.STATUS, START, Status.RUNNING),
    ]
    History(folder / "history.json").apply([(deploy, events)])
    config = parse_config(
        {"repos": [{"name": "acme/storefront", "environments": {"production": {}}}]}
    )
    return DeployService(
        config, AsyncHistory(History(folder / "history.json")), folder, now=lambda: START
    )


def produce(
    service: DeployService,
    loop: asyncio.AbstractEventLoop,
    folder: Path,
    total: int,
    batch: int,
    rate: float,
    done: threading.Event,
) -> None:
    began = time.perf_counter()
    with SpoolWriter.for_deploy(folder, DEPLOY_ID) as spool:
        for start in range(0, total, batch):
            ahead = began + start / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            records = [
                LogRecord(
                    START + timedelta(milliseconds=n),
                    "203.0.113.10",
                    "kamal-proxy",
                    f'{{"time":"2026-11-27T12:00:00Z","level":"INFO","msg":"Request","path":"/up","status":200,"n":{n}}}',
                )
                for n in range(start, min(total, start + batch))
            ]
            spool.append_many(records)
            loop.call_soon_threadsafe(service.updates.publish, LogGrew(DEPLOY_ID))
    done.set()


async def key_to_screen(
    app: VmkitApp, pilot: object, lines: LogLines, key: str, loop: asyncio.AbstractEventLoop
) -> float:
    """Seconds from a key press to the next screen refresh after the view moved. The press is
    not awaited first: the pilot waits for the whole app to be idle, which a flood never is."""
    before_y = lines.scroll_y
    started = time.perf_counter()
    press = asyncio.create_task(pilot.press(key))  # type: ignore[attr-defined]
    while lines.scroll_y == before_y:
        if time.perf_counter() - started > 5:  # the key could not move the view (at an end)
            press.cancel()
            await asyncio.gather(press, return_exceptions=True)
            return None
        await asyncio.sleep(0.001)
    painted: asyncio.Future[float] = loop.create_future()
    app.call_after_refresh(lambda: painted.done() or painted.set_result(time.perf_counter()))
    end = await painted
    press.cancel()  # the key was handled; don't wait for the app to be idle
    await asyncio.gather(press, return_exceptions=True)
    return end - started


async def key_effect(
    app: VmkitApp, pilot: object, key: str, effect: Callable[[], bool]
) -> float | None:
    """Seconds from a key press until `effect()` holds and the screen has refreshed."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    press = asyncio.create_task(pilot.press(key))  # type: ignore[attr-defined]
    while not effect():
        if time.perf_counter() - started > 30:
            press.cancel()
            await asyncio.gather(press, return_exceptions=True)
            return None
        await asyncio.sleep(0.001)
    painted: asyncio.Future[float] = loop.create_future()
    app.call_after_refresh(lambda: painted.done() or painted.set_result(time.perf_counter()))
    end = await painted
    press.cancel()
    await asyncio.gather(press, return_exceptions=True)
    return end - started


def filtering(lines: LogLines) -> bool:
    return getattr(lines, "filter_progress", None) is not None


async def filter_keys(app: VmkitApp, pilot: object, lines: LogLines) -> None:
    """`s` and `F` over the whole spool, with up/down keys while each filter runs."""
    pane = app.query_one(LogPane)
    samples: list[float] = []
    whole: list[float] = []
    for key in ["s", "s", "s", "F", "s", "F", "s", "s"]:  # ends on all lines
        state = (pane.source_filter, pane.folded)
        began = time.perf_counter()
        sample = await key_effect(
            app, pilot, key, lambda state=state: (pane.source_filter, pane.folded) != state
        )
        if sample is not None:
            samples.append(sample)
        moves = 0
        while filtering(lines):
            if lines.row_count > 2 * lines.scrollable_content_region.height:
                y = lines.scroll_y
                step = "k" if moves % 2 == 0 else "j"
                sample = await key_effect(app, pilot, step, lambda y=y: lines.scroll_y != y)
                if sample is not None:
                    samples.append(sample)
                moves += 1
            await asyncio.sleep(0.01)
        whole.append(time.perf_counter() - began)
        await pilot.press("G")  # type: ignore[attr-defined]
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    print(
        f"s/F over {lines.row_count:,} lines: a whole filter took "
        f"{min(whole):.2f}-{max(whole):.2f} s; {len(samples)} keys (s, F, up/down while "
        f"filtering): p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {samples[-1] * 1000:.1f} ms"
    )
    print(f"log_filter_p99_ms={p99:.1f}")


async def run(total: int, batch: int, rate: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vmkit-logview-bench-"))
    service = seed(folder)
    app = VmkitApp(service, now=lambda: START, spinners=False)
    samples: list[float] = []
    peak = [0.0]
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        while not stop_sampling.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.02)

    async with app.run_test(size=(120, 36)) as pilot:
        while app.query_one("#deploys").row_count == 0:
            await pilot.pause(0.02)
        await pilot.press("enter", "enter", "l")
        lines = app.query_one(LogLines)
        baseline = rss_mib()
        peak[0] = baseline
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        done = threading.Event()
        started = time.perf_counter()
        producer = threading.Thread(
            target=produce,
            args=(service, asyncio.get_running_loop(), folder, total, batch, rate, done),
            daemon=True,
        )
        producer.start()
        keys = ["k", "j"]
        loop = asyncio.get_running_loop()
        presses = 0
        while not done.is_set() or lines.row_count < total:
            if lines.row_count > 100:
                sample = await key_to_screen(app, pilot, lines, keys[presses % 2], loop)
                presses += 1
                if sample is not None:
                    samples.append(sample)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await pilot.press("G")  # back to following the end
        stop_sampling.set()
        sampler.join()
        assert lines.row_count == total, lines.row_count
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    print(
        f"{total:,} lines streamed into the log pane in {elapsed:.1f} s: {total / elapsed:,.0f} lines/s ingested"
    )
    print(
        f"key press -> screen refreshed with the view moved, {len(samples)} presses during the flood: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {samples[-1] * 1000:.1f} ms"
    )
    print(f"RSS baseline {baseline:.0f} MiB, peak {peak[0]:.0f} MiB")
    print(f"log_view_rss_growth_mib={peak[0] - baseline:.1f}")
    print(f"log_view_p99_ms={p99:.1f}", flush=True)
    app = VmkitApp(service, now=lambda: START, spinners=False, track=False)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.query_one("#deploys").row_count == 0:
            await pilot.pause(0.02)
        await pilot.press("enter", "enter", "l")
        lines = app.query_one(LogLines)
        while lines.row_count < total:
            await pilot.pause(0.02)
        await filter_keys(app, pilot, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=100_000, help="lines per second")
    args = parser.parse_args()
    asyncio.run(run(args.lines, args.batch, args.rate))


if __name__ == "__main__":
    main()
