"""TinyDB's side of the history: the storage that serves one locked operation and the table
class its writes go through. Only `history` uses them: every process must write the file the
same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Table

from vmkit_tui.store.history.documents import _parse, _read_raw, _Snapshot
from vmkit_tui.store.history.durable import _write_durably


class HistoryStorage(Storage):
    """TinyDB storage for the history file, serving ONE locked operation.

    Serves `snapshot` (given: the state `History` verified against the file's bytes under the
    lock; else the file parsed and validated on first use) for every read: TinyDB re-reads the
    whole database for every table call. TinyDB replaces tables in the object it reads, so it
    gets a copy of the top level, never the snapshot's own. `write()` only keeps the new state;
    `flush()` commits it in one durable write (`written`: its bytes), so an operation that fails
    half-way never reaches the disk. `close()` discards. The snapshot's documents are written
    back as they are: records handed to callers share their `data` objects, which is why
    `History` says to treat them as read-only (nothing in vmkit-tui mutates them).
    """

    def __init__(self, path: str | os.PathLike[str], snapshot: _Snapshot | None = None) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._working: dict[str, Any] | None = None
        self._dirty = False
        self.written: bytes | None = None

    @property
    def snapshot(self) -> _Snapshot:
        if self._snapshot is None:
            self._snapshot = _parse(self.path, _read_raw(self.path))
        return self._snapshot

    def read(self) -> dict[str, Any] | None:
        if self._dirty:
            return self._working
        data = self.snapshot.data
        return None if data is None else dict(data)

    def write(self, data: dict[str, Any]) -> None:
        self._working, self._dirty = data, True

    def flush(self) -> None:
        if self._dirty:
            payload = orjson.dumps(self._working)
            _write_durably(self.path, payload)
            self.written, self._dirty = payload, False

    @property
    def working(self) -> dict[str, Any] | None:
        """The state the last `write()` left (what `flush()` wrote)."""
        return self._working

    def close(self) -> None:
        self._working, self._dirty = None, False


class _Table(Table):
    """TinyDB's table with the two writes the history makes, minus the O(n) Python work TinyDB
    does on every write (each document id turned into an int and back, and a scan for the
    highest): with 5,000 deploys and 20,000 events that was most of an append's CPU. The file
    stays the same: string ids, the next one above the highest, in insertion order."""

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        tables = self._storage.read() or {}
        table = dict(tables.get(self.name, {}))
        first = max(map(int, table), default=0) + 1
        ids = []
        for doc_id, document in enumerate(documents, first):
            table[str(doc_id)] = dict(document)
            ids.append(doc_id)
        tables[self.name] = table
        self._storage.write(tables)
        self.clear_cache()
        return ids

    def remove(
        self, cond: QueryLike | None = None, doc_ids: Iterable[int] | None = None
    ) -> list[int]:
        if cond is not None or doc_ids is None:
            return super().remove(cond, doc_ids)
        tables = self._storage.read() or {}
        table = dict(tables.get(self.name, {}))
        removed = [doc_id for doc_id in doc_ids if table.pop(str(doc_id), None) is not None]
        tables[self.name] = table
        self._storage.write(tables)
        self.clear_cache()
        return removed


class _HistoryDB(TinyDB):
    table_class = _Table
