"""SSH ingest, one run: vmkit-tui's client (ssh.stream → batched SpoolWriter) against a bare
asyncssh line loop, on the same data from the same sandbox VM.

    .venv/bin/python bench/ssh_stream.py [--lines 1000000] [--rounds 2] [--profile]

The sandbox VM (a real SSH server on 127.0.0.1) runs in a child process, so the figures are the
client's alone; its `vmkit-sandbox-flood N` command writes N kamal-proxy request-log lines with
docker timestamps (~290 bytes each) in large chunks. Each round streams them once through a raw
`async for line in process.stdout` loop (errors="replace", nothing else) and once through our
client into a deploy spool; rounds alternate and the best of each kind counts. Client-side RSS
is sampled from /proc/self/status during our client's runs.

Prints each round's rates and CPU time per line (this process, all threads: steadier than rates
on a busy machine), then `ssh_peak_rss_growth_mib=<x>` and last
`ssh_ingest_ratio=<client lines/s ÷ raw lines/s>` (target ≥ 0.7). `--profile` adds a cProfile
of one client run (top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncssh

from vmkit_tui.sources import ssh
from vmkit_tui.store.spool import LogRecord, SpoolWriter, spool_path

BATCH = 8192  # records per spool write (about what the watcher's 50 ms flush gathers here)
OPTIONS = ssh.SshOptions(ssh_config=None, use_agent=False)


# ------------------------------------------------------------------ the VM (child process)


async def serve(key_dir: Path) -> None:
    """Run the sandbox VMs until stdin closes; print the flood VM's port first."""
    from vmkit_tui.sandbox.servers.vm_server import VmSandbox
    from vmkit_tui.sandbox.world.world import World

    world = World.seeded(7, profile="small")
    sandbox = VmSandbox(world, key_dir)
    await sandbox.start()
    vm = world.vms()[0].name
    print(sandbox.host_spec(vm), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await sandbox.stop()


# ------------------------------------------------------------------ the client (this process)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssPeak:
    """Samples VmRSS every 20 ms in a thread while a run lasts."""

    def __init__(self) -> None:
        self.start = rss_kib()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib())

    def finish(self) -> float:
        """Peak growth in MiB."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib())
        return (self.peak - self.start) / 1024


async def raw_loop(target: ssh.SshTarget, lines: int) -> int:
    """The baseline: asyncssh's own line iterator, nothing else."""
    async with (
        asyncssh.connect(
            target.host,
            target.port,
            username=target.user,
            client_keys=[str(target.identity_file)],
            known_hosts=str(target.known_hosts),
            config=None,
            agent_path=None,
        ) as conn,
        conn.create_process(f"vmkit-sandbox-flood {lines}", errors="replace") as process,
    ):
        count = 0
        async for line in process.stdout:
            if line:
                count += 1
        await process.wait()
    return count


async def client_loop(target: ssh.SshTarget, lines: int, data_dir: Path, deploy_id: str) -> int:
    """Our client: records from ssh.stream, appended to the deploy's spool in batches (the
    write in a thread, as the watcher does, so reading goes on meanwhile)."""
    count = 0
    batch: list[LogRecord] = []
    append = batch.append
    with SpoolWriter(spool_path(data_dir, deploy_id)) as writer:
        async for record in ssh.stream(
            target, f"vmkit-sandbox-flood {lines}", "kamal-proxy", options=OPTIONS
        ):
            append(record)
            if len(batch) >= BATCH:
                count += await asyncio.to_thread(writer.append_many, batch)
                batch = []
                append = batch.append
        count += await asyncio.to_thread(writer.append_many, batch)
    return count


async def measure(
    target: ssh.SshTarget, lines: int, rounds: int, data_dir: Path, profile: bool
) -> None:
    await raw_loop(target, 20_000)  # warm up both paths (imports, key exchange code)
    await client_loop(target, 20_000, data_dir, "00000000beef")
    raw_rates: list[float] = []
    client_rates: list[float] = []
    raw_cpu: list[float] = []
    client_cpu: list[float] = []
    growth = 0.0
    for round_number in range(rounds):
        began, cpu = time.perf_counter(), cpu_seconds()
        count = await raw_loop(target, lines)
        raw_rates.append(count / (time.perf_counter() - began))
        raw_cpu.append((cpu_seconds() - cpu) / count * 1e6)
        assert count == lines, f"raw loop got {count} lines"

        sampler = RssPeak()
        began, cpu = time.perf_counter(), cpu_seconds()
        count = await client_loop(target, lines, data_dir, f"{round_number:012x}")
        client_rates.append(count / (time.perf_counter() - began))
        client_cpu.append((cpu_seconds() - cpu) / count * 1e6)
        growth = max(growth, sampler.finish())
        assert count == lines, f"client got {count} lines"
        spool_path(data_dir, f"{round_number:012x}").unlink()
    print(f"lines={lines} rounds={rounds} batch={BATCH}")
    print("raw_lines_per_s=" + " ".join(f"{rate:.0f}" for rate in raw_rates))
    print("client_lines_per_s=" + " ".join(f"{rate:.0f}" for rate in client_rates))
    # CPU time of this process (all threads) per line: steadier than rates on a busy machine.
    print("raw_cpu_us_per_line=" + " ".join(f"{us:.2f}" for us in raw_cpu))
    print("client_cpu_us_per_line=" + " ".join(f"{us:.2f}" for us in client_cpu))
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await client_loop(target, lines, data_dir, "00000000f00d")
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        print(out.getvalue())
    print(f"ssh_peak_rss_growth_mib={growth:.1f}")
    print(f"ssh_ingest_ratio={max(client_rates) / max(raw_rates):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return
    with tempfile.TemporaryDirectory(prefix="vmkit-ssh-bench-") as scratch:
        key_dir = Path(scratch) / "keys"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(key_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            spec = child.stdout.readline().strip()
            target = ssh.parse_target(
                spec, identity_file=key_dir / "id_ed25519", known_hosts=key_dir / "known_hosts"
            )
            asyncio.run(measure(target, args.lines, args.rounds, Path(scratch), args.profile))
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(30)


if __name__ == "__main__":
    main()
