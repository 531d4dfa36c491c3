"""Several processes writing one history at once: no acknowledged event is lost, a reader never
sees a torn file, and a process that read before another one wrote appends after it cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.unit.history_samples import created, make_deploy, note
from vmkit_tui.store.history import History, HistoryError

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_history_child.py")
WRITERS, APPENDS = 3, 200


def start_writer(path: Path, deploy_id: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), "append", str(path), deploy_id, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


def finish(writer: subprocess.Popen[str]) -> list[str]:
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    return out.split()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_concurrent_writers_lose_nothing_and_a_reader_never_sees_a_torn_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.json"
    deploy = make_deploy(1)
    History(path).create_deploy(deploy, [created(deploy)])
    writers = [start_writer(path, deploy.id, APPENDS) for _ in range(WRITERS)]
    reads: list[int] = []
    reader_errors: list[BaseException] = []
    done = threading.Event()

    def read_until_done() -> None:
        reader = History(path)
        while not done.is_set():
            try:
                reads.append(len(reader.record(deploy.id).events))
            except HistoryError as exc:
                reader_errors.append(exc)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    started = time.monotonic()
    try:
        for writer in writers:  # all start appending at the same moment
            assert writer.stdin
            writer.stdin.write("go\n")
            writer.stdin.flush()
        written = [finish(writer) for writer in writers]
    finally:
        done.set()
        reader.join(timeout=30)
    elapsed = time.monotonic() - started
    events = History(path).record(deploy.id).events[1:]  # after the CREATED event
    stored = [e.event_id for e in events]
    acknowledged = [event_id for ids in written for event_id in ids]
    lost = set(acknowledged) - set(stored)
    duplicated = len(stored) - len(set(stored))
    summary = (
        f"concurrency: {WRITERS} processes x {APPENDS} appends -> {len(stored)} events, "
        f"{len(lost)} lost, {duplicated} duplicated, {len(reads)} reads during the run, "
        f"{len(reader_errors)} reader errors, {elapsed:.1f} s"
    )
    print(summary)
    assert len(acknowledged) == WRITERS * APPENDS, summary
    assert len(stored) == WRITERS * APPENDS and not lost and not duplicated, summary
    assert [e.seq for e in events] == list(range(2, WRITERS * APPENDS + 2)), summary
    assert not reader_errors and reads and reads == sorted(reads), summary
    for n in range(WRITERS):  # each writer's own appends stayed in its own order
        mine = [e.detail for e in events if e.detail.split(":")[0] == f"{writers[n].pid}"]
        assert mine == [f"{writers[n].pid}:{i}" for i in range(APPENDS)]


def test_stale_reader_then_append_sees_the_other_process(tmp_path: Path) -> None:
    """Process A reads, process B appends, A appends: no error (no stale TinyDB doc-id or
    query cache), and A sees B's event before its own."""
    path = tmp_path / "history.json"
    deploy = make_deploy(1)
    a = History(path)
    a.create_deploy(deploy, [created(deploy)])
    assert len(a.record(deploy.id).events) == 1
    b = start_writer(path, deploy.id, 1)
    b.stdin.write("go\n")  # type: ignore[union-attr]
    (b_event,) = finish(b)
    (a_event,) = a.append_events([note(deploy.id, "from A")])
    events = a.record(deploy.id).events
    assert [e.event_id for e in events[1:]] == [b_event, a_event.event_id]
    assert [e.seq for e in events] == [1, 2, 3]
