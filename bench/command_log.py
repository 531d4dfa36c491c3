"""What the command log costs: tracking many environments for a simulated hour, log on ÷ off.

    .venv/bin/python bench/command_log.py [--envs 20] [--minutes 60] [--speed 600] [--rounds 5]

The polling bench's world (bench/polling.py: the demo's 3 repos and 7 environments, plus quiet
environments up to `--envs`) is served over real HTTP on 127.0.0.1 on a clock `--speed` times
faster than real time. Each round, a fresh `DeployService` tracks every environment for
`--minutes` simulated minutes while a push arrives every ten simulated minutes (so runs, jobs
and job logs are fetched too), once with the command log on (the ring, the `@` listeners'
hand-off and the session file) and once off, in pairs whose order alternates, after one
warm-up round. The CPU time of the process over each round is measured (the sandbox serves
from the same loop, as in the demo). Last line: `command_log_overhead_ratio=<on ÷ off>`, the
median of the pairs' ratios (target ≤ 1.05).
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

from bench.polling import build_config, first_answers, tracking_service
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ScaledClock
from vmkit_tui.sandbox.world.world import World


async def one_round(
    world: World, clock: ScaledClock, sandbox: GitHubSandbox, args: argparse.Namespace, on: bool
) -> tuple[float, int]:
    """CPU seconds for one simulated tracking period, and the calls logged."""
    data_dir = Path(tempfile.mkdtemp(prefix="vmkit-calls-bench-"))
    config = build_config(world, sandbox.base_url, args.envs)
    service = tracking_service(config, data_dir, clock, record_calls=on)
    started = time.process_time()
    async with service.updates.subscription() as queue, service:
        await first_answers(queue, sum(len(r.environments) for r in config.repos))
        real = world.environments()
        for index in range(int(args.minutes // 10)):
            env = real[index % len(real)]
            world.push(env.repo, env.name, "success")
            await clock.sleep(600)
    cpu = time.process_time() - started
    return cpu, len(service.calls.calls()) if on else 0


async def measure(args: argparse.Namespace) -> int:
    clock = ScaledClock(datetime.now(UTC).replace(microsecond=0), speed=args.speed)
    world = World.seeded(7, clock, profile="demo")
    sandbox = GitHubSandbox(world)
    await sandbox.start()
    ratios: list[float] = []
    logged = 0
    try:
        await one_round(world, clock, sandbox, args, False)  # warm-up: imports, the first runs
        for pair in range(args.rounds):
            order = (False, True) if pair % 2 == 0 else (True, False)  # drift hits both alike
            cpu: dict[bool, float] = {}
            for on in order:
                cpu[on], calls = await one_round(world, clock, sandbox, args, on)
                logged = max(logged, calls)
            ratios.append(cpu[True] / cpu[False])
            print(
                f"pair {pair + 1}: cpu on {cpu[True]:.3f} s, off {cpu[False]:.3f} s, "
                f"ratio {ratios[-1]:.3f}",
                flush=True,
            )
    finally:
        await sandbox.stop()
    print(f"environments tracked: {args.envs}; simulated minutes per round: {args.minutes:g}")
    print(f"calls logged in a round with the log on: {logged}")
    print(f"command_log_overhead_ratio={statistics.median(ratios):.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=600.0)
    parser.add_argument("--rounds", type=int, default=5)
    return asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
