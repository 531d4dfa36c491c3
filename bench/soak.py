"""Soak: the demo under steady navigation, sampling the dashboard's RSS, open fds and threads.

    .venv/bin/python bench/soak.py [--minutes 10] [--every 30] [--keys-every 2.5] [--no-sandbox-apart]

The dashboard runs in a tmux session at 120x40 (a real terminal) on the sandbox at `--speed 20`.
By default the sandbox (`vmkit-tui sandbox`) runs in a process of its own, so what is sampled is
the dashboard's own growth (the simulated world grows with its runs and VM logs, and that is no
leak); `--no-sandbox-apart` runs `vmkit-tui demo` instead (both in one process). A key every
`--keys-every` seconds, a seeded walk over j/k/enter/tab/l/h, moves between the panes, the
environments and their deploys (so log panes open and close). Every `--every` seconds the
process's RSS, open fds (by kind) and threads are sampled with psutil. Prints the samples, the
fds that appeared or went away between the baseline and the end, then `soak_fd_growth=`,
`soak_rss_growth_mib=` and last `soak_threads_growth=`: the last sample minus the baseline, the
first sample one minute or more in (start-up excluded). Targets: 0, <= 20 and 0.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
from tui_driver import VMKIT, Sandbox, Tmux, stop_process

# The walk: mostly up and down in the focused pane, sometimes into or out of a pane.
KEYS = ["j"] * 5 + ["k"] * 3 + ["Enter"] * 2 + ["Tab", "l", "l", "h"]


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def fd_targets(pid: int) -> Counter[str]:
    """What the process's fds point to: files by path, sockets, pipes and anon inodes by kind."""
    found: Counter[str] = Counter()
    folder = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(folder):
        try:
            target = os.readlink(folder / fd)
        except OSError:
            continue  # closed meanwhile
        if ":[" in target:
            target = target.split(":", 1)[0] + ":"  # socket:, pipe:, anon_inode:
        found[re.sub(r"\b[0-9a-f]{12}\b", "<deploy>", target)] += 1  # spool files
    return found


def sample(process: psutil.Process, elapsed: float) -> dict:
    with process.oneshot():
        targets = fd_targets(process.pid)
        return {
            "t": elapsed,
            "rss": process.memory_info().rss / 2**20,
            "fds": process.num_fds(),
            "threads": process.num_threads(),
            "targets": targets,
        }


def describe(s: dict) -> str:
    kinds = Counter()
    for target, count in s["targets"].items():
        kind = target.rstrip(":") if target.endswith(":") else "file"
        kinds[kind] += count
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    return (
        f"t={s['t']:4.0f}s rss={s['rss']:7.1f} MiB fds={s['fds']:3d} ({by_kind}) "
        f"threads={s['threads']}"
    )


def fd_changes(before: Counter[str], after: Counter[str]) -> list[str]:
    lines = []
    for target in sorted(set(before) | set(after)):
        delta = after[target] - before[target]
        if delta:
            lines.append(f"  {delta:+d} {target}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--keys-every", type=float, default=2.5, help="seconds between keys")
    parser.add_argument("--speed", type=float, default=20.0, help="the sandbox's clock")
    parser.add_argument(
        "--sandbox-apart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the sandbox in a process of its own (default), or the demo: both in one",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmkit-soak-bench-"))
    tmux, name, process, sandbox = Tmux(120, 40), "soak", None, None
    rng = random.Random(2026)
    try:
        if args.sandbox_apart:
            sandbox = Sandbox(folder / "sandbox", speed=args.speed)
            command = [VMKIT, "--config", str(sandbox.config_path)]
        else:
            command = [
                VMKIT,
                "demo",
                "--speed",
                f"{args.speed:g}",
                "--data-dir",
                str(folder / "demo"),
            ]
        process = tmux.start(name, command)
        tmux.wait_for(name, lambda s: "Deploys ·" in s, "the dashboard", 60)
        start = time.monotonic()
        samples, keys_sent = [sample(process, 0.0)], Counter()
        print(describe(samples[0]), flush=True)
        next_key, next_sample = start + args.keys_every, start + args.every
        end = start + args.minutes * 60
        while (now := time.monotonic()) < end + 0.5:
            if not alive(process):
                raise RuntimeError(f"the dashboard exited; screen:\n{tmux.screen(name)}")
            if now >= next_sample:
                samples.append(sample(process, now - start))
                print(describe(samples[-1]), flush=True)
                next_sample += args.every
            elif now >= next_key:
                key = rng.choice(KEYS)
                tmux.keys(name, key)
                keys_sent[key] += 1
                next_key += args.keys_every
            time.sleep(max(0.0, min(next_key, next_sample, end + 0.5) - time.monotonic()))
        print("keys sent: " + ", ".join(f"{k} {n}" for k, n in sorted(keys_sent.items())))
        base = next((s for s in samples if s["t"] >= 60), samples[0])
        last = samples[-1]
        changes = fd_changes(base["targets"], last["targets"])
        print(f"fds at t={last['t']:.0f}s vs t={base['t']:.0f}s:" + ("" if changes else " same"))
        for line in changes:
            print(line)
        tmux.keys(name, "q")
        deadline = time.monotonic() + 15
        while alive(process) and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"q: the dashboard {'did not exit' if alive(process) else 'exited'} within 15 s")
        where = "the sandbox in its own process" if sandbox else "the demo: one process"
        print(f"({where}, at {args.speed:g}x, {args.minutes:g} min, tmux 120x40)")
        print(f"soak_fd_growth={last['fds'] - base['fds']}")
        print(f"soak_rss_growth_mib={last['rss'] - base['rss']:.1f}")
        print(f"soak_threads_growth={last['threads'] - base['threads']}")
    finally:
        tmux.kill(name, process)
        tmux.kill_server()
        if process is not None and alive(process):
            stop_process(process)
        if sandbox is not None:
            sandbox.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
