"""The team history under load: N teammates, each a separate process with its own history file,
rolling back one sandbox environment every few seconds for a minute, one run.

    .venv/bin/python bench/team.py [--members 5] [--seconds 60] [--every 4] [--speed 6]

The sandbox (GitHub over real HTTP on 127.0.0.1, on a clock at `--speed` × real time, no new
pushes) runs in this process; every member is `python bench/team.py --member …`: a
`DeployService` with `[github] share = true` tracking the environment (as a TUI does) from an
empty history, which then tries a rollback (the default target, its own user name) every
`--every` seconds (jittered) for `--seconds`. Then a settle (`--settle`: running deploys end)
and an idle minute (`--idle`), and every member reports what it saw.

Printed, all measured in this run:
- `team_duplicate_dispatches`: dispatched runs created while an earlier dispatched run on the
  environment had not finished (target 0);
- `team_converged`: after the idle minute, every history lists the same deploys with the same
  status events (true/false);
- `team_visible_p50_s`: from a member's rollback being recorded to another member's history
  holding it (median over every member pair);
- `team_idle_counted_requests_per_member_per_min`: GitHub requests that count against the rate
  limit (a 304 does not) per member per idle minute (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.domain.models import DeployRecord, EventKind, Trigger
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth
from vmkit_tui.store.history import History

REPO = "acme/my-fastapi-app"
ENV = "staging"


# ---------------------------------------------------------------------------- one member


async def member(args: argparse.Namespace) -> None:
    """One teammate: track, wait for "go" on stdin, roll back every few seconds, then idle."""
    from vmkit_tui.actions.errors import ActionError
    from vmkit_tui.config import load_config
    from vmkit_tui.service import DeployService
    from vmkit_tui.store.history import AsyncHistory

    config = load_config(Path(args.config))
    assert config.history_path is not None and config.data_dir is not None
    service = DeployService(config, AsyncHistory(History(config.history_path)), config.data_dir)
    seen: dict[str, float] = {}
    dispatched: list[tuple[str, float]] = []
    refused = 0
    async with service.updates.subscription() as queue, service:
        while not _tracked(await queue.get()):  # the first round: the past from its runs
            pass

        async def watch() -> None:
            while True:
                update = await queue.get()
                if isinstance(update, DeployChanged) and update.record.deploy.environment == ENV:
                    seen.setdefault(update.record.id, time.time())

        watcher = asyncio.create_task(watch())
        for record in await service.history.records(REPO, ENV):
            seen.setdefault(record.id, 0.0)  # known before the start: not a measurement
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        actions = await service.actions()
        end = time.monotonic() + args.seconds
        rng = random.Random(args.member)
        while time.monotonic() < end:
            await asyncio.sleep(args.every * rng.uniform(0.5, 1.5))
            try:
                record = await actions.rollback(
                    REPO, ENV, trigger=Trigger.MANUAL, actor=f"member{args.member}"
                )
            except ActionError:
                refused += 1
                continue
            dispatched.append((record.id, time.time()))
            seen.setdefault(record.id, time.time())
        await asyncio.sleep(args.settle)
        github = await service.github_client()
        assert github is not None
        before = github.stats.counted
        await asyncio.sleep(args.idle)
        idle_counted = github.stats.counted - before
        watcher.cancel()
    report = {
        "dispatched": dispatched,
        "seen": seen,
        "refused": refused,
        "idle_counted": idle_counted,
    }
    print(json.dumps(report), flush=True)


def _tracked(update: object) -> bool:
    return (
        isinstance(update, SourceHealth)
        and (update.key, update.environment) == ("github", ENV)
        and update.health is Health.OK
    )


# ---------------------------------------------------------------------------- coordinator


def configure(text: str, folder: Path) -> Path:
    """A member's config: the sandbox's, with its own history and data folder, sharing on."""
    from vmkit_tui.sandbox.demo import write_private

    lines = []
    for line in text.splitlines():
        if line.startswith("history = "):
            line = f'history = "{folder / "history.json"}"'
        elif line.startswith("data_dir = "):
            line = f'data_dir = "{folder}"'
        lines.append(line)
        if line == "[github]":
            lines.append("share = true")
    path = folder / "vmkit.toml"
    write_private(path, "\n".join(lines) + "\n")
    return path


def duplicates(world: object, since: datetime) -> int:
    """Dispatched runs on ENV created while an earlier one had not completed."""
    from vmkit_tui.sandbox.world.world import World

    assert isinstance(world, World)
    runs = sorted(
        (
            run
            for run in world.runs(REPO)
            if run.environment == ENV
            and run.event == "workflow_dispatch"
            and run.created_at >= since
        ),
        key=lambda run: run.created_at,
    )
    count = 0
    for index, run in enumerate(runs):
        for earlier in runs[:index]:
            state = world.run_status(earlier)
            if state.status != "completed" or state.updated_at > run.created_at:
                count += 1
                break
    return count


def trail(record: DeployRecord) -> tuple[str, tuple[str, ...]]:
    statuses = tuple(
        e.status.value for e in record.events if e.kind is EventKind.STATUS and e.status
    )
    return record.status.value, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0, help="rollback phase (real s)")
    parser.add_argument("--every", type=float, default=4.0, help="a member's rollback interval")
    parser.add_argument("--settle", type=float, default=30.0, help="after it: deploys end")
    parser.add_argument("--idle", type=float, default=60.0, help="then the idle window measured")
    parser.add_argument("--speed", type=float, default=6.0)
    parser.add_argument("--member", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member is not None:
        asyncio.run(member(args))
        return

    from vmkit_tui.sandbox.commands import prepare_data_dir
    from vmkit_tui.sandbox.demo import SandboxRuntime

    with tempfile.TemporaryDirectory(prefix="vmkit-team-") as tmp:
        root = Path(tmp)
        prepare_data_dir(root / "sandbox")
        runtime = SandboxRuntime(root / "sandbox", seed=7, speed=args.speed, traffic_every=0)
        info = runtime.start()
        try:
            text = info.config_path.read_text()
            procs = []
            for index in range(args.members):
                folder = root / f"member{index}"
                folder.mkdir()
                argv = [sys.executable, __file__, "--member", str(index)]
                argv += ["--config", str(configure(text, folder))]
                argv += ["--seconds", str(args.seconds), "--every", str(args.every)]
                argv += ["--settle", str(args.settle), "--idle", str(args.idle)]
                procs.append(
                    subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                )
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline().strip()
                assert line == "ready", f"a member did not start: {line!r}"
            since = runtime.now()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            reports = []
            for proc in procs:
                assert proc.stdout is not None
                reports.append(json.loads(proc.stdout.readline()))
                proc.wait(60)
            duplicate = runtime.run_in_sandbox(lambda world: duplicates(world, since))
        finally:
            runtime.stop()
        histories = [
            {
                r.id: trail(r)
                for r in History(root / f"member{i}" / "history.json").records(REPO, ENV)
            }
            for i in range(args.members)
        ]
    converged = all(h == histories[0] for h in histories)
    for index, history in enumerate(histories[1:], 1):
        for deploy_id in sorted(set(history) | set(histories[0])):
            if history.get(deploy_id) != histories[0].get(deploy_id):
                print(
                    f"differs: deploy {deploy_id}: member0 {histories[0].get(deploy_id)} "
                    f"member{index} {history.get(deploy_id)}"
                )
    delays = [
        report["seen"][deploy_id] - at
        for origin, mine in enumerate(reports)
        for deploy_id, at in mine["dispatched"]
        for other, report in enumerate(reports)
        if other != origin and report["seen"].get(deploy_id)
    ]
    missing = sum(
        1
        for origin, mine in enumerate(reports)
        for deploy_id, _ in mine["dispatched"]
        for other, report in enumerate(reports)
        if other != origin and not report["seen"].get(deploy_id)
    )
    sent = sum(len(r["dispatched"]) for r in reports)
    refused = sum(r["refused"] for r in reports)
    idle = [r["idle_counted"] * 60.0 / args.idle for r in reports]
    print(
        f"members={args.members} rollback phase {args.seconds:g} s, one try per member every "
        f"~{args.every:g} s; clock at {args.speed:g}x"
    )
    print(f"rollbacks sent={sent} refused={refused} (a teammate's claim, or nothing to roll to)")
    print(f"visibility: {len(delays)} member pairs measured, {missing} never seen")
    print(f"team_duplicate_dispatches={duplicate}")
    print(f"team_converged={'true' if converged else 'false'}")
    p50 = statistics.median(delays) if delays else float("nan")
    print(f"team_visible_p50_s={p50:.2f}")
    print(f"team_idle_counted_requests_per_member_per_min={max(idle):.1f}")


if __name__ == "__main__":
    main()
