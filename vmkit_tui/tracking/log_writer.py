"""One deploy's log lines into its spool as they arrive, batched.

Kamal's console output (kamal-ssh actions) and the VM streams (`vm_watch`) both produce lines
faster than one file write each is worth: `SpoolLog` collects them and writes at most 20
batches a second, each announced with `LogGrew`. A write that fails becomes a `SourceHealth`
error for the environment (the lines of that batch are lost, later ones are tried again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import Broadcaster, Health, LogGrew, SourceHealth
from vmkit_tui.store.spool import LogRecord, SpoolWriter

__all__ = ["FLUSH_INTERVAL", "SpoolLog"]

FLUSH_INTERVAL = 0.25  # seconds between spool writes (and LogGrew updates) of one deploy


class SpoolLog:
    """Batched writes of one deploy's spool. `after_flush` runs after every write (vm_watch
    records its pending first-healthy moment there); `wake()` asks for a flush soon, with or
    without new lines. Call `close()` once done: it writes what is left, runs `after_flush`
    a last time and closes the spool."""

    def __init__(
        self,
        data_dir: Path,
        deploy_id: str,
        updates: Broadcaster,
        *,
        repo: str,
        environment: str,
        after_flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.deploy_id = deploy_id
        self.updates = updates
        self.repo = repo
        self.environment = environment
        self.after_flush = after_flush
        self._buffer: list[LogRecord] = []
        self._wake = asyncio.Event()
        self._writer: SpoolWriter | None = None
        self._done = False
        self._task = asyncio.create_task(self._loop())

    def append(self, record: LogRecord) -> None:
        self._buffer.append(record)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()
            if self._done:
                return
            await asyncio.sleep(FLUSH_INTERVAL)  # coalesce: at most 20 writes and LogGrew a second

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            try:
                if self._writer is None:
                    self._writer = await asyncio.to_thread(
                        SpoolWriter.for_deploy, self.data_dir, self.deploy_id
                    )
                await asyncio.to_thread(self._writer.append_many, batch)
            except OSError as error:
                message = plain(f"cannot write the log of deploy {self.deploy_id}: {error}")
                self.updates.publish(
                    SourceHealth("spool", self.repo, self.environment, Health.ERROR, message)
                )
            else:
                self.updates.publish(LogGrew(self.deploy_id))
        if self.after_flush is not None:
            await self.after_flush()

    async def close(self) -> None:
        """Write what is left and close the spool (safe to call more than once)."""
        if not self._done:
            self._done = True
            self._wake.set()
        await self._task
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.close)
