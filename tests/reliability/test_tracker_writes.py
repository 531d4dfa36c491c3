"""A watcher's history writes: its own are never parsed back (each write says what it changed),
while a write by another process (a real one) is read at the watcher's next write, also for
deploys that write did not touch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from tests.reliability.test_history_concurrency import CHILD, ROOT
from tests.unit.history_samples import REPO, created, make_deploy, note
from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.updates import DeployChanged, Update
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.history import documents as documents_module
from vmkit_tui.store.history.documents import _Snapshot
from vmkit_tui.tracking.records import RunRecords


class Sink:
    """What the watcher reports (the service's side of TrackingSink, recorded)."""

    def __init__(self) -> None:
        self.updates: list[Update] = []

    def publish(self, update: Update) -> None:
        self.updates.append(update)

    async def deploy_started(self, record: DeployRecord) -> None: ...

    async def deploy_finished(self, record: DeployRecord) -> None: ...


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every validation of a whole file (`_index`) in this process."""
    calls: list[int] = []
    real = documents_module._index

    def counting(path: Path, data: Any) -> _Snapshot:
        calls.append(1)
        return real(path, data)

    monkeypatch.setattr(documents_module, "_index", counting)
    return calls


def append_elsewhere(path: Path, deploy_id: str) -> str:
    """One note appended by another process; the id it stored."""
    done = subprocess.run(
        [sys.executable, str(CHILD), "append", str(path), deploy_id, "1"],
        input="go\n",
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (event_id,) = done.stdout.split()
    return event_id


@pytest.mark.timeout(60)
def test_own_writes_are_adopted_and_another_process_write_is_read(
    tmp_path: Path, parses: list[int]
) -> None:
    path = tmp_path / "history.json"
    history = History(path)
    first, second = make_deploy(1, run_id=101), make_deploy(2, run_id=102)
    history.apply([(first, [created(first)]), (second, [created(second)])])
    sink = Sink()
    records = RunRecords(
        REPO,
        EnvironmentConfig("production", branch="main"),
        cast(GitHubClient, None),  # records only: nothing here talks to GitHub
        AsyncHistory(history),
        tmp_path,
        sink,
        now=datetime.now,
    )
    reads = 0
    real_records = history.records

    def counting_records(*args: Any) -> list[DeployRecord]:
        nonlocal reads
        reads += 1
        return real_records(*args)

    history.records = counting_records  # type: ignore[method-assign]

    async def scenario() -> None:
        await records._reload()
        assert reads == 1
        for n in range(3):  # own writes: adopted from what the write returned
            await records._commit(events=[note(second.id, f"mine {n}")])
        assert (reads, parses) == (1, [])
        assert [e.detail for e in records._runs[(102, 1)].record.events][-1] == "mine 2"
        published = [u.record for u in sink.updates if isinstance(u, DeployChanged)]
        assert [r.events[-1].detail for r in published] == ["mine 0", "mine 1", "mine 2"]

        theirs = await asyncio.to_thread(append_elsewhere, path, first.id)
        await records._commit(events=[note(second.id, "mine after theirs")])
        assert parses == [1], "another process wrote: its file was parsed, once"
        assert reads == 2, "and the environment read again"
        assert theirs in {e.event_id for e in records._runs[(101, 1)].record.events}
        await records._commit(events=[note(second.id, "mine again")])
        assert (reads, parses) == (2, [1])

    asyncio.run(scenario())
