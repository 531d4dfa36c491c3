"""`AsyncHistory`: reads run in daemon threads, so a process that ends right after starting a
whole-file read does not wait for it; their results and errors still reach the caller."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.unit.history_samples import REPO, created, make_deploy
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.store.history import AsyncHistory, History, HistoryCorrupt


class SlowHistory(History):
    """A full read that takes as long as a huge file's (until `gate` opens, at most 5 s)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.started = threading.Event()
        self.gate = threading.Event()

    def records(
        self, repo: str | None = None, environment: str | None = None
    ) -> list[DeployRecord]:
        self.started.set()
        self.gate.wait(5)
        return super().records(repo, environment)


def test_ending_the_loop_does_not_wait_for_a_read(tmp_path: Path) -> None:
    history = SlowHistory(tmp_path / "history.json")

    async def start_then_quit() -> None:
        reading = asyncio.ensure_future(AsyncHistory(history).records())
        await asyncio.to_thread(history.started.wait, 5)
        reading.cancel()

    began = time.monotonic()
    asyncio.run(start_then_quit())  # joins the default executor's threads on the way out
    try:
        assert not history.gate.is_set()
        assert time.monotonic() - began < 4, "the loop waited for the read"
    finally:
        history.gate.set()


async def test_a_read_hands_back_its_result_and_its_error(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    deploy = make_deploy(1)
    History(path).create_deploy(deploy, [created(deploy)])
    history = AsyncHistory(History(path))
    assert [r.id for r in await history.preview(REPO, "production")] == [deploy.id]
    assert (await history.record(deploy.id)).id == deploy.id
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(HistoryCorrupt, match="truncated"):
        await history.records()
