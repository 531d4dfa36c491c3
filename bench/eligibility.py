"""What keeping rollback eligibility fresh costs, one run: CPU and wall time of one refresh of
every repo of the demo sandbox (3 repos, 7 environments, 9 hosts: a GHCR tag listing per repo,
`docker container ls` over real SSH per host), and that cost spread over the refresh interval.

    .venv/bin/python bench/eligibility.py [--rounds 5]

The sandbox (GitHub over HTTP, VMs over SSH on 127.0.0.1) runs in a thread of this process, so
the CPU figure counts both ends of every connection: an upper bound of the client's share. The
first round (no ETags yet) is left out: the rest are what a running dashboard repeats.
Last line: `eligibility_idle_cpu_pct=` (one round per REFRESH_INTERVAL, as % of one core).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from vmkit_tui.config import load_config
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime
from vmkit_tui.tracking.eligibility import REFRESH_INTERVAL


async def _measure(runtime: SandboxRuntime, config_path: Path, rounds: int) -> None:
    config = load_config(config_path)
    service = sandbox_service(config, runtime)
    try:
        refresher = await service.eligibility_refresher()
        repos = [repo.name for repo in config.repos]
        hosts = sum(len(env.hosts) for repo in config.repos for env in repo.environments)
        await asyncio.gather(*(refresher.refresh(repo) for repo in repos))
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await asyncio.gather(*(refresher.refresh(repo) for repo in repos))
        wall_ms = (time.perf_counter() - wall) / rounds * 1000
        cpu_ms = (time.process_time() - cpu) / rounds * 1000
    finally:
        await service.stop()
    print(f"one refresh of {len(repos)} repos, {hosts} hosts: {wall_ms:.0f} ms wall")
    print(f"eligibility_refresh_cpu_ms={cpu_ms:.0f}")
    print(f"eligibility_idle_cpu_pct={cpu_ms / 1000 / REFRESH_INTERVAL * 100:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmkit-bench-") as folder:
        runtime = SandboxRuntime(Path(folder), traffic_every=0)
        info = runtime.start()
        try:
            asyncio.run(_measure(runtime, info.config_path, args.rounds))
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
