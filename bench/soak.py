"""Soak: the demo under steady navigation, sampling the dashboard's RSS, open fds and threads.

    .venv/bin/python bench/soak.py [--minutes 10] [--every 30] [--fds-every 2] [--window 120]
        [--keys-every 2.5] [--no-sandbox-apart] [--census | --trace]

The dashboard runs in a tmux session at 120x40 (a real terminal) on the sandbox at `--speed 20`.
By default the sandbox (`vmkit-tui sandbox`) runs in a process of its own, so what is sampled is
the dashboard's own growth (the simulated world grows with its runs and VM logs, and that is no
leak); `--no-sandbox-apart` runs `vmkit-tui demo` instead (both in one process). A key every
`--keys-every` seconds, a seeded walk over j/k/enter/tab/l/h, moves between the panes, the
environments and their deploys (so log panes open and close).

Every `--every` seconds a line: RSS, threads and the fds by kind (TCP sockets by what they reach:
`tcp github`, `tcp ssh`; `spool` files of deploys' logs; other files, pipes, …). RSS and threads
growth are the last sample minus the baseline, the first sample one minute or more in (start-up
excluded). Open fds come and go with the live deploys (each watched deploy holds its spool and an
SSH connection per host and source; at 20x one or more are almost always live), so their count
at two moments says little. They are listed every `--fds-every` seconds (all counts printed, a
line a minute), each fd known by its number and what it points to (a socket or pipe by its
inode), and `soak_fd_growth` compares two windows of `--window` seconds, one from t=60s and the
last one: how many more fds stayed open through the whole last window than through the first.
An fd of a live stream opens and closes within the window; a leaked one stays open from when it
leaked to the end. Printed too: the fewest fds of each kind in both windows, and by kind and
target what stayed open. `soak_fd_end_minus_start` is the plain last minus baseline count, for
comparison. Targets: `soak_fd_growth=0`, `soak_rss_growth_mib` <= 20, `soak_threads_growth=0`.

`--census` prints, for the baseline sample and the end, the live objects by type that grew
(after a full collection) and glibc's heap figures (in use, free: fragmentation). `--trace`
adds tracemalloc (slower, and its RSS is not comparable): what grew on the Python heap, by line
and by traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import psutil
from tui_driver import VMKIT, Sandbox, Tmux, stop_process

# With --census or --trace: sitecustomize.py for the dashboard's interpreter (PYTHONPATH). On each
# SIGUSR2 it writes $VMKIT_SOAK_TRACE/<n>.json (live objects by type, glibc's mallinfo2) and,
# tracing (tracemalloc from the start), <n>.snap.
TRACE_HOOK = """
import collections, ctypes, gc, json, os, signal, traceback, tracemalloc

class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]

def _vmkit_soak_dump(signum, frame):
    folder = os.environ["VMKIT_SOAK_TRACE"]
    n = len([name for name in os.listdir(folder) if name.endswith(".json")])
    try:
        _vmkit_soak_census(folder, n)
    except BaseException:
        with open(os.path.join(folder, f"{n}.json"), "w") as out:
            json.dump({"error": traceback.format_exc()}, out)

def _name(kind):
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}"

def _vmkit_soak_census(folder, n):
    gc.collect()
    objects = gc.get_objects()
    types = collections.Counter(_name(type(o)) for o in objects)
    del objects
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    census = {"types": types, "malloc": {k: getattr(info, k) for k, _ in info._fields_}}
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(os.path.join(folder, f"{n}.snap"))
    with open(os.path.join(folder, f"{n}.part"), "w") as out:
        json.dump(census, out)
    os.replace(os.path.join(folder, f"{n}.part"), os.path.join(folder, f"{n}.json"))

if os.environ.get("VMKIT_SOAK_TRACE") and os.path.isdir(os.environ["VMKIT_SOAK_TRACE"]):
    if os.environ.get("VMKIT_SOAK_HEAP"):
        tracemalloc.start(10)
    signal.signal(signal.SIGUSR2, _vmkit_soak_dump)
"""

# The walk: mostly up and down in the focused pane, sometimes into or out of a pane.
KEYS = ["j"] * 5 + ["k"] * 3 + ["Enter"] * 2 + ["Tab", "l", "l", "h"]


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def fd_listing(process: psutil.Process, ports: dict[int, str]) -> dict[int, str]:
    """What each of the process's fds points to: a file by path, a TCP socket by what it
    reaches (`ports`: remote port → name), other sockets, pipes and anon inodes by kind; each
    with its inode (`[123]`) where it has one, so the same open fd is recognised later."""
    sockets = {}
    try:
        for conn in process.net_connections(kind="all"):
            if conn.raddr and isinstance(conn.raddr, tuple):
                port = conn.raddr[1]
                sockets[conn.fd] = f"socket:tcp {ports.get(port, f'port {port}')}"
            elif conn.family == socket.AF_UNIX:
                sockets[conn.fd] = "socket:unix"
    except psutil.Error:
        pass
    found = {}
    folder = Path(f"/proc/{process.pid}/fd")
    for fd in os.listdir(folder):
        try:
            target = os.readlink(folder / fd)
        except OSError:
            continue  # closed meanwhile
        if ":[" in target:  # socket:[123], pipe:[123], anon_inode:[eventpoll]
            kind, inode = target.split(":", 1)
            target = f"{sockets.get(int(fd), kind + ':')} {inode}"
        found[int(fd)] = target
    return found


def shown(target: str) -> str:
    """A target without its inode, a deploy id as <deploy>: what is counted by kind."""
    return re.sub(r"\b[0-9a-f]{12}\b", "<deploy>", re.sub(r" \[[^]]*\]$", "", target))


def fd_targets(listing: dict[int, str]) -> Counter[str]:
    return Counter(shown(target) for target in listing.values())


def fd_sample(process: psutil.Process, ports: dict[int, str], elapsed: float) -> dict:
    listing = fd_listing(process, ports)
    return {"t": elapsed, "open": set(listing.items()), "targets": fd_targets(listing)}


def sample(process: psutil.Process, ports: dict[int, str], elapsed: float) -> dict:
    with process.oneshot():
        return {
            **fd_sample(process, ports, elapsed),
            "rss": process.memory_info().rss / 2**20,
            "threads": process.num_threads(),
        }


KINDS = ("tcp github", "tcp ssh", "spool", "file", "pipe", "anon_inode", "unix", "socket")


def kind(target: str) -> str:
    if target.startswith("socket:tcp"):
        return " ".join(target.split()[:2]).removeprefix("socket:")  # tcp github, tcp ssh
    if target == "socket:unix":
        return "unix"
    if target.endswith(":"):
        return target.rstrip(":")
    return "spool" if "/logs/" in target else "file"


def kinds(targets: Counter[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for target, count in targets.items():
        found[kind(target)] += count
    return found


def describe(s: dict) -> str:
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds(s["targets"]).items()))
    fds = s["targets"].total()
    return (
        f"t={s['t']:4.0f}s rss={s['rss']:7.1f} MiB fds={fds:3d} ({by_kind}) threads={s['threads']}"
    )


def fd_changes(before: Counter[str], after: Counter[str]) -> list[str]:
    lines = []
    for target in sorted(set(before) | set(after)):
        delta = after[target] - before[target]
        if delta:
            lines.append(f"  {delta:+d} {target}")
    return lines


def fd_report(fd_samples: list[dict], every: float, window: float) -> tuple[set, set]:
    """Print every fd count (a line a minute), the fewest of each kind in the first and the
    last window, and the fds open for the whole of each window by kind; those two sets."""
    print(f"fd counts every {every:g} s, a line a minute (min median max: all counts):")
    minutes: dict[int, list[int]] = {}
    for s in fd_samples:
        minutes.setdefault(int(s["t"] // 60), []).append(s["targets"].total())
    for minute, counts in sorted(minutes.items()):
        spread = f"{min(counts)} {statistics.median(counts):g} {max(counts)}"
        print(f"  min {minute:2d}: {spread}: " + " ".join(map(str, counts)))
    end = fd_samples[-1]["t"]
    windows = [
        [s for s in fd_samples if 60 <= s["t"] < 60 + window],  # after start-up
        [s for s in fd_samples if s["t"] > end - window],
    ]
    low = [{k: min(kinds(s["targets"])[k] for s in w) for k in KINDS} for w in windows]
    print(
        f"fewest of each kind, {window:g} s from t=60s → the last {window:g} s: "
        + ", ".join(f"{k} {low[0][k]} → {low[1][k]}" for k in KINDS)
    )
    stayed = [set.intersection(*(s["open"] for s in w)) for w in windows]
    counted = [Counter(shown(target) for _, target in fds) for fds in stayed]
    print(
        "open for the whole window, by kind: "
        + ", ".join(f"{k} {kinds(counted[0])[k]} → {kinds(counted[1])[k]}" for k in KINDS)
    )
    for line in fd_changes(counted[0], counted[1]) or ["  the same targets"]:
        print(line)
    return stayed[0], stayed[1]


def vm_ports(config: dict) -> dict[int, str]:
    """Remote port → what it is, from the sandbox's config: its GitHub API and its VMs."""
    ports = {int(config["github"]["api_url"].rsplit(":", 1)[1]): "github"}
    for repo in config["repos"]:
        for env in repo["environments"].values():
            for host in env["hosts"]:
                ports[int(host.rsplit(":", 1)[1])] = f"ssh {host.split('@')[-1]}"
    return ports


def snapshot(process: psutil.Process, folder: Path) -> Path:
    """Ask the dashboard (SIGUSR2, see TRACE_HOOK) for its census (and tracemalloc snapshot);
    the census file (the snapshot, if any, is beside it with the suffix .snap)."""
    path = folder / f"{len(list(folder.glob('*.json')))}.json"
    process.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard wrote no census")
        time.sleep(0.2)
    return path


def census_report(first: Path, last: Path, top: int = 25) -> None:
    """Live objects by type (after a full collection) and glibc's heap, then and now."""
    before, after = json.loads(first.read_text()), json.loads(last.read_text())
    if "error" in before or "error" in after:
        raise RuntimeError(f"the census failed: {before.get('error') or after.get('error')}")
    grown = Counter(after["types"])
    grown.subtract(before["types"])
    ours = [n for n, d in grown.items() if d and n.startswith(("vmkit_tui.", "textual.widget"))]
    print(f"live objects by type, growth (the {top} largest, then every widget and ours):")
    for name, delta in [*grown.most_common(top), *((n, grown[n]) for n in sorted(ours))]:
        print(f"  {delta:+7d} {name} ({after['types'].get(name, 0)})")
    mib = {k: [m[k] / 2**20 for m in (before["malloc"], after["malloc"])] for k in after["malloc"]}
    print(
        "glibc malloc (MiB, then → now): "
        + ", ".join(f"{k} {a:.1f} → {b:.1f}" for k, (a, b) in mib.items() if k in MALLOC_KEYS)
    )


MALLOC_KEYS = ("arena", "hblkhd", "uordblks", "fordblks")  # heap, mmapped, in use, free


def trace_report(first: Path, last: Path, top: int = 20) -> None:
    """What grew between two snapshots, by line and then by traceback (largest first)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*")]
    before = tracemalloc.Snapshot.load(str(first)).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(str(last)).filter_traces(ignore)
    total = sum(t.size for t in after.traces) - sum(t.size for t in before.traces)
    print(f"traced heap growth: {total / 2**20:+.1f} MiB; by line:")
    for stat in after.compare_to(before, "lineno")[:top]:
        print(f"  {stat}")
    print("by traceback (innermost frame last):")
    for stat in after.compare_to(before, "traceback")[: top // 2]:
        print(f"  {stat.size_diff / 2**10:+.0f} KiB, {stat.count_diff:+d} blocks:")
        for line in stat.traceback.format(limit=-8):
            print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--fds-every", type=float, default=2.0, help="seconds between fd counts")
    parser.add_argument(
        "--window", type=float, default=120.0, help="seconds of fd counts compared (first, last)"
    )
    parser.add_argument("--keys-every", type=float, default=2.5, help="seconds between keys")
    parser.add_argument("--speed", type=float, default=20.0, help="the sandbox's clock")
    parser.add_argument(
        "--sandbox-apart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the sandbox in a process of its own (default), or the demo: both in one",
    )
    parser.add_argument("--census", action="store_true", help="objects by type, then and now")
    parser.add_argument(
        "--trace", action="store_true", help="--census and tracemalloc: what grew on the heap"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmkit-soak-bench-"))
    tmux, name, process, sandbox = Tmux(120, 40), "soak", None, None
    rng = random.Random(2026)
    try:
        ports: dict[int, str] = {}
        if args.sandbox_apart:
            sandbox = Sandbox(folder / "sandbox", speed=args.speed)
            command = [VMKIT, "--config", str(sandbox.config_path)]
            ports = vm_ports(sandbox.config)
        else:
            command = [VMKIT, "demo", "--speed", f"{args.speed:g}"]
            command += ["--data-dir", str(folder / "demo")]
        args.census = args.census or args.trace
        if args.census:  # the sandbox (started above) is not traced: only the dashboard
            (folder / "hook").mkdir()
            (folder / "hook" / "sitecustomize.py").write_text(TRACE_HOOK)
            (folder / "snaps").mkdir()
            paths = [str(folder / "hook"), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
            os.environ["VMKIT_SOAK_TRACE"] = str(folder / "snaps")
            if args.trace:
                os.environ["VMKIT_SOAK_HEAP"] = "1"
        process = tmux.start(name, command)
        tmux.wait_for(name, lambda s: "Deploys ·" in s, "the dashboard", 60)
        start = time.monotonic()
        samples, fd_samples, keys_sent = [sample(process, ports, 0.0)], [], Counter()
        print(describe(samples[0]), flush=True)
        snaps: list[Path] = []
        next_key, next_sample = start + args.keys_every, start + args.every
        next_fds = start + args.fds_every
        end = start + args.minutes * 60
        while (now := time.monotonic()) < end + 0.5:
            if not alive(process):
                raise RuntimeError(f"the dashboard exited; screen:\n{tmux.screen(name)}")
            if now >= next_sample:
                samples.append(sample(process, ports, now - start))
                fd_samples.append(samples[-1])
                print(describe(samples[-1]), flush=True)
                if args.census and not snaps and samples[-1]["t"] >= 60:
                    snaps.append(snapshot(process, folder / "snaps"))
                next_sample += args.every
                next_fds = max(next_fds, time.monotonic() + args.fds_every / 2)
            elif now >= next_fds:
                fd_samples.append(fd_sample(process, ports, now - start))
                next_fds += args.fds_every
            elif now >= next_key:
                key = rng.choice(KEYS)
                tmux.keys(name, key)
                keys_sent[key] += 1
                next_key += args.keys_every
            wake = min(next_key, next_sample, next_fds, end + 0.5)
            time.sleep(max(0.0, wake - time.monotonic()))
        print("keys sent: " + ", ".join(f"{k} {n}" for k, n in sorted(keys_sent.items())))
        if args.census:
            snaps.append(snapshot(process, folder / "snaps"))
            census_report(snaps[0], snaps[-1])
            if args.trace:
                trace_report(snaps[0].with_suffix(".snap"), snaps[-1].with_suffix(".snap"))
        base = next((s for s in samples if s["t"] >= 60), samples[0])
        last = samples[-1]
        first, final = fd_report(fd_samples, args.fds_every, args.window)
        tmux.keys(name, "q")
        deadline = time.monotonic() + 15
        while alive(process) and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"q: the dashboard {'did not exit' if alive(process) else 'exited'} within 15 s")
        where = "the sandbox in its own process" if sandbox else "the demo: one process"
        print(f"({where}, at {args.speed:g}x, {args.minutes:g} min, tmux 120x40)")
        print(f"soak_fd_end_minus_start={last['targets'].total() - base['targets'].total()}")
        print(f"soak_fd_growth={len(final) - len(first)}")
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
