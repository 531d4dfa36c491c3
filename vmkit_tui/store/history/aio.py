"""`AsyncHistory`: the history's calls for asyncio code, each in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar

from vmkit_tui.domain.models import Deploy, DeployEvent, DeployRecord, NewEvent
from vmkit_tui.store.history.history import ApplyResult, CreateResult, History

_T = TypeVar("_T")


class AsyncHistory:
    """`History` for asyncio code: each call runs in a worker thread, because a call parses the
    whole file and may wait for another process's lock, and the TUI and servers must keep their
    event loop responsive.

    Reads run in daemon threads of their own: they change nothing on disk, so a process may end
    in the middle of one, and quitting right after start does not wait for a whole-file parse
    (`asyncio.run` joins the default executor's threads). Writes use the default executor, so
    every write started completes before the process ends."""

    def __init__(self, history: History) -> None:
        self.history = history

    async def apply(
        self,
        creates: Sequence[tuple[Deploy, Sequence[NewEvent]]] = (),
        events: Sequence[NewEvent] = (),
    ) -> ApplyResult:
        return await asyncio.to_thread(self.history.apply, creates, events)

    async def create_deploy(self, deploy: Deploy, events: Sequence[NewEvent]) -> CreateResult:
        return await asyncio.to_thread(self.history.create_deploy, deploy, events)

    async def append_events(self, events: Sequence[NewEvent]) -> list[DeployEvent]:
        return await asyncio.to_thread(self.history.append_events, events)

    async def records(
        self, repo: str | None = None, environment: str | None = None
    ) -> list[DeployRecord]:
        return await _read(self.history.records, repo, environment)

    async def record(self, deploy_id: str) -> DeployRecord:
        return await _read(self.history.record, deploy_id)

    async def find_by_run(self, repo: str, run_id: int) -> DeployRecord | None:
        return await _read(self.history.find_by_run, repo, run_id)

    async def environments(self) -> list[tuple[str, str]]:
        return await _read(self.history.environments)

    async def preview(self, repo: str, environment: str) -> list[DeployRecord]:
        return await _read(self.history.preview, repo, environment)


async def _read(call: Callable[..., _T], *args: Any) -> _T:
    """`call(*args)` in a daemon thread of its own, its outcome handed back to this loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # the caller may have been cancelled
            outcome()

    def run() -> None:
        try:
            result = call(*args)
        except BaseException as exc:  # handed to the caller, as asyncio.to_thread does
            report: Callable[[], None] = partial(future.set_exception, exc)
        else:
            report = partial(future.set_result, result)
        with suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, report)

    threading.Thread(target=run, name="history-read", daemon=True).start()
    return await future
