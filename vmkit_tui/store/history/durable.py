"""The history file's writes: durable, atomic, and one at a time across processes.

Every write is one whole read-modify-write under the sidecar lock `<file>.lock`, and never
touches the file in place: temp file in the same folder → fsync → `os.replace` → fsync of the
folder. A crash leaves the old or the new file, never a mix; a left-over temp file is removed
by the next write. An error raised *after* the swap (e.g. the folder fsync) may mean
"committed": retrying with the same event ids is always safe. The folder is created 0700, the
file is 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vmkit_tui.domain.models import utcnow
from vmkit_tui.store.history.errors import HistoryBusy, HistoryUnusable

DEFAULT_LOCK_TIMEOUT = 10.0


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_affixes(path: Path) -> tuple[str, str]:
    return f".{path.name}.", ".tmp"


def _write_durably(path: Path, payload: bytes) -> None:
    """Temp file beside `path` → fsync → os.replace → fsync the folder: old or new, never a mix."""
    prefix, suffix = _temp_affixes(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)  # mode 0600
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _remove_orphans(path: Path) -> None:
    """Delete temp files left by writers that died mid-write (call with the lock held)."""
    prefix, suffix = _temp_affixes(path)
    with os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(suffix):
                with suppress(FileNotFoundError):
                    os.unlink(entry.path)


@contextmanager
def _exclusive(path: Path, timeout: float) -> Iterator[None]:
    """Hold `<file>.lock` (a sidecar: `os.replace` swaps the data file's inode under any lock on it).

    A new FileLock per operation: its own descriptor, so threads of one process exclude each
    other exactly like separate processes do. filelock is imported here, at the first write:
    reads take no lock, and a dashboard's first paint only reads.
    """
    from filelock import FileLock, Timeout

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=timeout, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise HistoryBusy(
            f"history file {path} is busy: another vmkit-tui process (TUI, CLI or MCP server) "
            f"held its lock for over {timeout:g} s; try again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def move_aside(path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Path:
    """Rename the history file to `<name>.corrupt-<UTC YYYYmmddTHHMMSSZ>` (never overwriting an
    earlier one) so a fresh history starts; called explicitly, never automatically. The bytes
    are kept for recovery by hand. Raises FileNotFoundError if there is no file, and
    HistoryUnusable (moving nothing) if the path is not a regular file: a directory is the
    user's, never a damaged history."""
    path = Path(path)
    with _exclusive(path, lock_timeout):
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise HistoryUnusable(path, "a directory" if path.is_dir() else "not a regular file")
        stem = f"{path.name}.corrupt-{utcnow():%Y%m%dT%H%M%SZ}"
        target, n = path.with_name(stem), 1
        while target.exists():
            target, n = path.with_name(f"{stem}-{n}"), n + 1
        os.rename(path, target)
        _fsync_dir(path.parent)
    return target
