"""kill -9 at random moments while another process writes the history.

After every kill: the file parses strictly (duplicate keys rejected) and through `History`, holds
every event the writer had acknowledged, has no duplicate event and strictly increasing seq, and
the next append (a fresh `History`, as a restarted process would open it) works and leaves no
orphan temp file behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import IO

import pytest

from tests.unit.history_samples import created, make_deploy, note
from vmkit_tui.store.history import History

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_history_child.py")
KILLS = 200


def strict_load(path: Path) -> dict:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
        return dict(pairs)

    return json.loads(path.read_bytes(), object_pairs_hook=no_duplicates)


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


class Zygote:
    """The forking parent of the writers (see _history_child.py)."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), "zygote", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        assert self.process.stdin and self.process.stdout
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout

    def ask(self, command: str) -> list[str]:
        """Send a command; return the lines up to and including the answer."""
        self.stdin.write(f"{command}\n".encode())
        self.stdin.flush()
        answer = "pid" if command == "spawn" else f"reaped {command.split()[1]}"
        lines: list[str] = []
        while True:
            line = self.stdout.readline().decode()
            assert line, "the zygote died"
            lines.append(line.strip())
            if line.startswith(answer):
                return lines

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_never_loses_or_duplicates_an_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    seeded = [make_deploy(n, environment=f"e{n % 8}") for n in range(20)]
    History(path).apply([(d, [created(d), note(d.id)]) for d in seeded])
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    acked: set[str] = set()
    kills = orphans = 0
    zygote = Zygote(path)
    started = time.monotonic()
    try:
        for kills in range(1, KILLS + 1):
            (spawned,) = zygote.ask("spawn")
            pid = int(spawned.split()[1])
            time.sleep(rng.uniform(0.002, 0.04))  # a random moment in the writer's life
            os.kill(pid, signal.SIGKILL)
            lines = zygote.ask(f"reap {pid}")
            acked.update(line.split()[1] for line in lines if line.startswith("ack "))
            orphans += len(temp_files(tmp_path))

            context = f"kill {kills} (seed {seed})"
            data = strict_load(path)
            events = list(data["events"].values())
            ids = [event["event_id"] for event in events]
            seqs = [event["seq"] for event in events]
            lost = acked - set(ids)
            duplicated = len(ids) - len(set(ids))
            assert not lost, f"{context}: {len(lost)} acknowledged events lost"
            assert duplicated == 0, f"{context}: {duplicated} duplicated events"
            assert all(a < b for a, b in pairwise(seqs)), context
            reopened = History(path)
            assert len({e.event_id for r in reopened.records() for e in r.events}) == len(ids)
            (probe,) = reopened.append_events([note(seeded[kills % 20].id, "after kill")])
            assert reopened.record(probe.deploy_id).events[-1] == probe, context
            assert temp_files(tmp_path) == [], f"{context}: orphan temp file survived a write"
            acked.add(probe.event_id)
    finally:
        zygote.close()
    elapsed = time.monotonic() - started
    final = strict_load(path)["events"]
    summary = (
        f"crash: {kills} kills, {len(acked)} acked events verified, 0 lost, 0 duplicated "
        f"({len(final)} events in the file, {orphans} orphan temp files cleaned, "
        f"{elapsed:.1f} s, seed {seed})"
    )
    print(summary)
    assert kills == KILLS and len(acked) > KILLS, summary
    assert acked <= {event["event_id"] for event in final.values()}, summary
