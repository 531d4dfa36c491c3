"""Idle polling cost of deploy tracking, one run: does watching many environments cost any of
GitHub's hourly budget when nothing happens?

    .venv/bin/python bench/polling.py [--envs 20] [--minutes 10] [--speed 60] [--pushes 5]

A demo sandbox world (3 repos, 7 environments with weeks of runs) is served over real HTTP on
127.0.0.1 on a clock running `--speed` times faster than real time; a `DeployService` tracks
`--envs` environments (the world's 7, plus environments on branches without runs, which a
tracker polls just the same) with its timing on that clock. After the first round (each
environment's first answer: a full list, counted), it watches `--minutes` simulated idle minutes,
then pushes `--pushes` runs one at a time and measures how long each takes, in simulated and
real time, from appearing in the world to having its deploy record. Requests are counted on the
server: "counted" means not a 304 (GitHub charges no budget for a 304).
Last line: `idle_counted_requests=<n>` (counted requests after the first round; target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.config import Config, EnvironmentConfig, GitHubConfig, RepoConfig
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth, Update
from vmkit_tui.sandbox.servers.faults import RecordedRequest
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.clock import ScaledClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.polling import TrackingTiming


def build_config(world: World, api_url: str, count: int) -> Config:
    """The world's environments first, then quiet ones (branches with no runs) up to `count`."""
    envs: dict[str, list[EnvironmentConfig]] = {}
    real = world.environments()
    for env in real[:count]:
        envs.setdefault(env.repo, []).append(EnvironmentConfig(env.name, branch=env.branch))
    repos = sorted(envs) or sorted(world.repos)
    for index in range(count - min(count, len(real))):
        name = f"review-{index + 1:02d}"
        envs.setdefault(repos[index % len(repos)], []).append(EnvironmentConfig(name, branch=name))
    return Config(
        source=None,
        github=GitHubConfig(api_url=api_url, token=Secret(SANDBOX_TOKEN)),
        repos=tuple(
            RepoConfig(repo, world.repo(repo).image, tuple(found)) for repo, found in envs.items()
        ),
    )


def tracking_service(
    config: Config,
    data_dir: Path,
    clock: ScaledClock,
    *,
    record_calls: bool = True,
    past_logs: bool = True,
) -> DeployService:
    """A `DeployService` with its history in `data_dir` and its timing on the sandbox clock."""
    return DeployService(
        config,
        AsyncHistory(History(data_dir / "history.json")),
        data_dir,
        now=clock.now,
        tracking_timing=TrackingTiming(sleep=clock.sleep),
        record_calls=record_calls,
        past_logs=past_logs,
    )


async def first_answers(queue: asyncio.Queue[Update], count: int) -> None:
    """Wait until `count` environments have each had a healthy answer: the first round."""
    ok: set[tuple[str, str]] = set()
    while len(ok) < count:
        update = await queue.get()
        if isinstance(update, SourceHealth) and update.health is Health.OK:
            ok.add((update.repo, update.environment))


def first_of_each_url(requests: list[RecordedRequest]) -> set[int]:
    """Indexes of each URL's first request: the first round."""
    seen: set[tuple[str, str]] = set()
    first: set[int] = set()
    for index, request in enumerate(requests):
        url = (request.path, request.query)
        if url not in seen:
            seen.add(url)
            first.add(index)
    return first


async def measure(args: argparse.Namespace) -> int:
    clock = ScaledClock(datetime.now(UTC).replace(microsecond=0), speed=args.speed)
    world = World.seeded(7, clock, profile="demo")
    while any(world.run_status(run).status != "completed" for run in world.runs()):
        await clock.sleep(10)  # let the demo's opening deploy finish: the bench is about idle
    sandbox = GitHubSandbox(world)
    await sandbox.start()
    data_dir = Path(tempfile.mkdtemp(prefix="vmkit-polling-bench-"))
    config = build_config(world, sandbox.base_url, args.envs)
    environments = [(r.name, e.name) for r in config.repos for e in r.environments]
    # polling alone: the past's logs are a one-time fetch, not polling
    service = tracking_service(config, data_dir, clock, past_logs=False)
    try:
        async with service.updates.subscription() as queue, service:
            await first_answers(queue, len(environments))
            first_round = len(sandbox.requests)
            await clock.sleep(args.minutes * 60)
            idle_requests = list(sandbox.requests)
            latencies: list[tuple[float, float]] = []
            for index in range(args.pushes):
                env = world.environments()[index % len(world.environments())]
                started_real, started_sim = time.perf_counter(), clock.now()
                run = world.push(env.repo, env.name, "success")
                while True:
                    update = await queue.get()
                    if isinstance(update, DeployChanged) and update.record.run_id == run.id:
                        break
                latencies.append(
                    (
                        (clock.now() - started_sim).total_seconds(),
                        time.perf_counter() - started_real,
                    )
                )
    finally:
        await sandbox.stop()
    firsts = first_of_each_url(idle_requests)
    counted = [r for r in idle_requests if r.status != 304]
    idle_counted = [r for i, r in enumerate(idle_requests) if i not in firsts and r.status != 304]
    print(f"environments watched: {len(environments)} ({len(world.environments())} with runs)")
    print(f"simulated idle minutes: {args.minutes} (clock at {args.speed:g}x real time)")
    print(f"requests until every environment had its first answer: {first_round}")
    print(f"requests in all (first round + idle): {len(idle_requests)}")
    print(f"counted (non-304) requests in all: {len(counted)}")
    print(
        f"polls per environment per simulated minute: "
        f"{(len(idle_requests) - first_round) / len(environments) / args.minutes:.2f}"
    )
    if latencies:
        sims = [sim for sim, _real in latencies]
        reals = [real for _sim, real in latencies]
        print(
            f"new run → deploy record, over {len(latencies)} pushes: "
            f"simulated mean {statistics.mean(sims):.1f} s, max {max(sims):.1f} s; "
            f"real mean {statistics.mean(reals) * 1000:.0f} ms, max {max(reals) * 1000:.0f} ms"
        )
    print(f"idle_counted_requests={len(idle_counted)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--pushes", type=int, default=5)
    return asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
