"""Durable history append vs a stock TinyDB insert on the same 5,000-deploy data, one run.

    .venv/bin/python bench/history.py [--samples 21] [--dir DIR]

Builds a realistic history (100 environments × 50 deploys, about 4 events each), copies it, then
alternates one `History.append_events` (lock, one parse + validation, temp file, 2 fsyncs,
os.replace) with one stock `TinyDB(copy).table('events').insert(doc)` (default JSONStorage:
rewrites the file in place, 1 fsync, not crash-safe), on the same disk. Then the CPU one
tracker write costs (process CPU, every thread: a deploy watcher's `_commit` of one event, i.e.
the write plus adopting and publishing what changed), on the same 5,000 deploys. Prints the
medians, the cost of reading everything back, `history_append_ratio=<durable ÷ stock>` (target
≤ 1.5) and last `tracker_cpu_ms_per_write=…` (target ≤ 20).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

from tinydb import TinyDB

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_history import sample_creates

from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.models import DeployEvent, DeployRecord, EventKind, NewEvent, utcnow
from vmkit_tui.domain.updates import Update
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.records import RunRecords


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


class Sink:
    """The service's side of a watcher, minus the service: updates are dropped."""

    def publish(self, update: Update) -> None:
        pass

    async def deploy_started(self, record: DeployRecord) -> None:
        pass

    async def deploy_finished(self, record: DeployRecord) -> None:
        pass


def tracker_cpu(path: Path, samples: int) -> list[float]:
    """Process CPU seconds of each of `samples` watcher writes of one event (a NOTE on one of
    its environment's deploys, as a log claim is), after the watcher's first read."""
    history = History(path)
    repo, environment = history.environments()[0]
    records = RunRecords(
        repo,
        EnvironmentConfig(environment, branch="main"),
        cast(GitHubClient, None),  # records only: nothing here talks to GitHub
        AsyncHistory(history),
        path.parent,
        Sink(),
        now=utcnow,
    )

    async def writes() -> list[float]:
        deploys = [record.id for record in await records._reload()]
        spent = []
        for n in range(samples):
            note = NewEvent(deploys[n % len(deploys)], EventKind.NOTE, utcnow(), detail=f"n{n}")
            start = time.process_time()
            await records._commit(events=[note])
            spent.append(time.process_time() - start)
        return spent

    return asyncio.run(writes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=21)
    parser.add_argument("--dir", type=Path, default=None, help="folder for both files")
    args = parser.parse_args()
    rng = random.Random(2026)
    folder = Path(tempfile.mkdtemp(prefix="vmkit-history-bench-", dir=args.dir))
    try:
        path = folder / "history.json"
        history = History(path)
        creates = sample_creates(rng)
        history.apply(creates)
        stock_path = Path(shutil.copy(path, folder / "stock.json"))
        deploy_ids = [deploy.id for deploy, _events in creates]
        events = sum(len(e) for _d, e in creates)
        size = path.stat().st_size

        def new_note(n: int) -> NewEvent:
            detail = f"note {n}: rollback requested from the TUI"
            return NewEvent(rng.choice(deploy_ids), EventKind.NOTE, utcnow(), detail=detail)

        def durable(n: int) -> None:
            history.append_events([new_note(n)])

        def stock(n: int) -> None:
            doc = DeployEvent.from_new(new_note(n), 10**6 + n).to_doc()
            db = TinyDB(stock_path)
            db.table("events").insert(doc)
            db.close()

        durable_s: list[float] = []
        stock_s: list[float] = []
        for n in range(args.samples):  # interleaved, alternating which goes first
            pair = [(durable_s, durable), (stock_s, stock)]
            for samples, action in pair if n % 2 else reversed(pair):
                samples.append(timed(partial(action, n)))
        cold = [timed(lambda: History(path).records()) for _ in range(5)]
        warm = [timed(history.records) for _ in range(5)]
        durable_ms, stock_ms = median_ms(durable_s), median_ms(stock_s)
        print(
            f"history file: {len(creates)} deploys, {events + args.samples} events, "
            f"{size / 1e6:.1f} MB; {args.samples} samples each, interleaved, in {folder.parent}"
        )
        print(f"durable append (History.append_events): median {durable_ms:.1f} ms")
        print(f"stock TinyDB insert (JSONStorage, not crash-safe): median {stock_ms:.1f} ms")
        print(f"read all records, fresh History: median {median_ms(cold):.1f} ms")
        print(f"read all records, file unchanged since last read: {median_ms(warm):.1f} ms")
        print(f"history_append_ratio={durable_ms / stock_ms:.2f}")
        tracker_ms = median_ms(tracker_cpu(path, args.samples))
        print(f"tracker_cpu_ms_per_write={tracker_ms:.1f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
