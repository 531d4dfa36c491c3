"""The command log's session files: `<data dir>/calls/calls-<UTC start>-<pid>-<part>.jsonl`.

One JSON object per call (`Call.to_json`), written in batches from a thread at most once a
`flush_every` seconds, so recording a call never waits for the disk. A file stops at
`max_bytes`; the session goes on in its next part. Only the newest `keep` files stay: older
ones are deleted when a file is opened. A file that cannot be written turns the writer off
(the in-memory log goes on) and `error` says why.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from vmkit_tui.domain.calls import Call

KEEP_FILES = 20
MAX_FILE_BYTES = 4 * 1024 * 1024
_PATTERN = "calls-*.jsonl"


def session_files(folder: Path) -> list[Path]:
    """Every session file, oldest first (names sort by start time, then pid, then part)."""
    try:
        return sorted(folder.glob(_PATTERN))
    except OSError:
        return []


def session_of(path: Path) -> str:
    """`calls-<start>-<pid>` of `calls-<start>-<pid>-<part>.jsonl`: the parts of one session."""
    return path.stem.rpartition("-")[0]


def read_calls(path: Path) -> list[Call]:
    """The calls in one file."""
    return read_calls_from(path, 0)[0]


def read_calls_from(path: Path, start: int) -> tuple[list[Call], int]:
    """The calls in the whole lines from byte `start` on, and where the next read starts (a
    torn last line is left for then); a line that is not a call is skipped."""
    with path.open("rb") as file:
        file.seek(start)
        data = file.read()
    whole = data[: data.rfind(b"\n") + 1]
    calls = []
    for line in whole.splitlines():
        try:
            calls.append(Call.from_json(orjson.loads(line)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return calls, start + len(whole)


class CallFile:
    """Appends this session's calls to its files, batched, off the event loop."""

    def __init__(
        self,
        folder: Path,
        *,
        keep: int = KEEP_FILES,
        max_bytes: int = MAX_FILE_BYTES,
        flush_every: float = 1.0,
    ) -> None:
        self.folder = folder
        self.keep = max(1, keep)
        self.max_bytes = max_bytes
        self.flush_every = flush_every
        self.error: str | None = None
        self.path: Path | None = None  # the file being written, once the first call came
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._name = f"calls-{stamp}-{os.getpid()}"
        self._part = 0
        self._size = 0
        self._pending: list[Call] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    def add(self, call: Call) -> None:
        """Queue a call; the next flush writes it (a `CallLog` listener)."""
        if self.error is not None:
            return
        self._pending.append(call)
        if self._timer is None and self._writing is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): `close()` writes it
                return
            self._timer = loop.call_later(self.flush_every, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._pending and self._writing is None:
            batch, self._pending = self._pending, []
            self._writing = asyncio.create_task(self._write_batch(batch))

    async def _write_batch(self, batch: list[Call]) -> None:
        try:
            await asyncio.to_thread(self._write, batch)
        finally:
            self._writing = None
        if self._pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_every, self._flush)

    async def aclose(self) -> None:
        """Write what is queued and stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.shield(self._writing)
        batch, self._pending = self._pending, []
        if batch:
            await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[Call]) -> None:
        if self.error is not None:
            return
        data = b"".join(orjson.dumps(call.to_json()) + b"\n" for call in batch)
        try:
            path = self.path
            if path is None or (self._size and self._size + len(data) > self.max_bytes):
                path = self._open_next()
            with path.open("ab") as file:
                file.write(data)
            self._size += len(data)
        except OSError as error:
            self.error = f"cannot write the call log in {self.folder}: {error.strerror or error}"

    def _open_next(self) -> Path:
        """Start the session's next file and delete the oldest beyond `keep`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._part += 1
        path = self.folder / f"{self._name}-{self._part:03d}.jsonl"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        self.path = path  # only once it exists: readers look at it from other threads
        self._size = 0
        for old in session_files(self.folder)[: -self.keep]:
            try:
                old.unlink()
            except OSError:
                continue  # another process pruned it first
        return self.path
