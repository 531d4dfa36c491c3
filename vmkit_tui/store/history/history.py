"""The history's operations: `History` (blocking) and `AsyncHistory` (for asyncio code).

Every write is one `apply`: a batch of creates and event appends laid over the file state read
under the lock, pruned to the newest `keep` deploys per (repo, environment), and saved through
TinyDB (the only module that opens it: every process must use the same storage) in one durable
write. Reads take no lock (the swap is atomic) and parse the file once per call; a fresh TinyDB
serves each operation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
import platformdirs
from tinydb import TinyDB
from tinydb.storages import Storage

from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    ValidationError,
)
from vmkit_tui.store.history.documents import (
    DEPLOYS,
    EVENTS,
    FORMAT,
    META,
    VERSION,
    _BadDoc,
    _deploy_from_doc,
    _event_from_doc,
    _LastRead,
    _parse,
    _read_raw,
    _Snapshot,
)
from vmkit_tui.store.history.durable import (
    DEFAULT_LOCK_TIMEOUT,
    _exclusive,
    _remove_orphans,
    _write_durably,
)
from vmkit_tui.store.history.errors import UnknownDeploy

DEFAULT_KEEP = 50


def default_history_path() -> Path:
    """`<user data dir>/vmkit/history.json`; creates nothing (the first write does)."""
    return Path(platformdirs.user_data_dir("vmkit", appauthor=False)) / "history.json"


def _age(deploy: Deploy, first_seq: int) -> tuple[datetime, int]:
    """Sort key, oldest first: creation time, then the deploy's first event."""
    return deploy.created_at, first_seq


def _newest_first(records: list[DeployRecord]) -> list[DeployRecord]:
    records.sort(key=lambda r: _age(r.deploy, r.events[0].seq if r.events else 0), reverse=True)
    return records


class HistoryStorage(Storage):
    """TinyDB storage for the history file, serving ONE locked operation.

    `read()` reads, parses and validates the file on first use and then returns that same data:
    TinyDB re-reads the whole database for every table call, and re-parsing each time would
    multiply the cost. `write()` only keeps the new state; `flush()` commits it in one durable
    write, so an operation that fails half-way never reaches the disk. `close()` discards.
    Always a fresh parse, never `History`'s remembered read: documents handed to callers by
    earlier reads (which they could mutate) can never be written back.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._snapshot: _Snapshot | None = None
        self._working: dict[str, Any] | None = None
        self._dirty = False

    @property
    def snapshot(self) -> _Snapshot:
        if self._snapshot is None:
            self._snapshot = _parse(self.path, _read_raw(self.path))
        return self._snapshot

    def read(self) -> dict[str, Any] | None:
        return self._working if self._dirty else self.snapshot.data

    def write(self, data: dict[str, Any]) -> None:
        self._working, self._dirty = data, True

    def flush(self) -> None:
        if self._dirty:
            _write_durably(self.path, orjson.dumps(self._working))
            self._dirty = False

    def close(self) -> None:
        self._working, self._dirty = None, False


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one `History.apply` did.

    `records`: one per create, in order: the stored record, i.e. the new one or the existing one
    it duplicated (same id, or same repo + run id). `events`: one per appended event, in order:
    the stored event (new, or the one already holding that event_id), or None when it belonged
    to a create of this batch that turned out to be a duplicate. `created`: ids this call added.
    `pruned`: ids removed to keep `keep` per environment (this call's own creates included when
    they are older than all kept ones); their log spools can be deleted.
    """

    records: tuple[DeployRecord, ...]
    events: tuple[DeployEvent | None, ...]
    created: tuple[str, ...]
    pruned: tuple[str, ...]


class CreateResult(NamedTuple):
    record: DeployRecord
    pruned: tuple[str, ...]
    created: bool  # False: the deploy (or one for the same GitHub run) was already recorded


class _Batch:
    """The changes of one `apply`, laid over the snapshot read under the lock."""

    def __init__(self, snap: _Snapshot) -> None:
        self.snap = snap
        self.deploys: dict[str, Deploy] = {}
        self.events: dict[str, DeployEvent] = {}
        self.events_of: dict[str, list[DeployEvent]] = {}
        self.runs: dict[tuple[str, int], str] = {}
        self.duplicates: set[str] = set()  # creates dropped because their run was recorded
        self.pruned: list[str] = []
        self.seq = snap.max_seq

    def deploy(self, deploy_id: str) -> Deploy | None:
        return self.deploys.get(deploy_id) or self.snap.deploys.get(deploy_id)

    def run_holder(self, repo: str, run_id: int) -> str | None:
        key = (repo, run_id)
        return self.runs.get(key) or self.snap.runs.get(key)

    def create(self, deploy: Deploy, events: Sequence[NewEvent]) -> str:
        if self.deploy(deploy.id) is not None:
            return deploy.id
        if deploy.run_id is not None:
            holder = self.run_holder(deploy.repo, deploy.run_id)
            if holder is not None:
                self.duplicates.add(deploy.id)
                return holder
            self.runs[(deploy.repo, deploy.run_id)] = deploy.id
        self.deploys[deploy.id] = deploy
        for event in events:
            self.append(event)
        return deploy.id

    def append(self, new: NewEvent) -> DeployEvent | None:
        if new.deploy_id in self.duplicates:
            return None
        stored = self.snap.events.get(new.event_id)
        if stored is not None:
            return stored
        if new.event_id in self.events:
            return self.events[new.event_id]
        deploy = self.deploy(new.deploy_id)
        if deploy is None:
            raise UnknownDeploy(new.deploy_id)
        self.seq += 1
        event = DeployEvent.from_new(new, self.seq)
        self.events[event.event_id] = event
        self.events_of.setdefault(event.deploy_id, []).append(event)
        if event.kind is EventKind.RUN_LINKED and "run_id" in event.data:
            run_id = event.data["run_id"]
            if self.run_holder(deploy.repo, run_id) is None:
                self.runs[(deploy.repo, run_id)] = deploy.id
        return event

    def prune(self, keep: int) -> None:
        """Mark the oldest deploys of every environment this batch grew beyond `keep`."""
        grown: dict[tuple[str, str], list[str]] = {}
        for deploy in self.deploys.values():
            grown.setdefault((deploy.repo, deploy.environment), []).append(deploy.id)
        for key, new_ids in grown.items():
            members = [*self.snap.members.get(key, ()), *new_ids]
            if len(members) > keep:
                members.sort(key=self._age)
                self.pruned.extend(members[: len(members) - keep])

    def _age(self, deploy_id: str) -> tuple[datetime, int]:
        if deploy_id in self.deploys:
            mine = self.events_of.get(deploy_id)
            return _age(self.deploys[deploy_id], mine[0].seq if mine else 0)
        return _age(self.snap.deploys[deploy_id], self.snap.first_seq(deploy_id))

    def record(self, deploy_id: str) -> DeployRecord:
        extra = self.events_of.get(deploy_id, ())
        if deploy_id in self.deploys:
            return DeployRecord.build(self.deploys[deploy_id], extra)
        return self.snap.record(deploy_id, extra)

    def save(self, db: TinyDB) -> bool:
        """Apply the batch through TinyDB (inserts first: doc ids are never reused)."""
        gone = set(self.pruned)
        deploy_docs = [d.to_doc() for d in self.deploys.values() if d.id not in gone]
        event_docs = [e.to_doc() for e in self.events.values() if e.deploy_id not in gone]
        stale = [i for i in self.pruned if i in self.snap.deploys]
        if not (deploy_docs or event_docs or stale):
            return False
        if deploy_docs:
            db.table(DEPLOYS, cache_size=0).insert_multiple(deploy_docs)
        if event_docs:
            db.table(EVENTS, cache_size=0).insert_multiple(event_docs)
        if stale:
            db.table(DEPLOYS, cache_size=0).remove(
                doc_ids=[int(self.snap.deploy_keys[i]) for i in stale]
            )
            db.table(EVENTS, cache_size=0).remove(
                doc_ids=[
                    int(self.snap.event_keys[event.event_id])
                    for i in stale
                    for event in self.snap.events_of[i]
                ]
            )
        if self.snap.data is None:
            db.table(META, cache_size=0).insert({"format": FORMAT, "version": VERSION})
        return True


def _check_new(
    creates: Sequence[tuple[Deploy, Sequence[NewEvent]]], events: Sequence[NewEvent]
) -> None:
    """Refuse input that would write a document the loader rejects (before taking the lock)."""
    for deploy, deploy_events in creates:
        try:
            _deploy_from_doc(deploy.to_doc())
        except _BadDoc as exc:
            raise ValidationError(f"deploy {deploy.id}: {exc}") from None
        if not any(event.kind is EventKind.CREATED for event in deploy_events):
            raise ValidationError(f"deploy {deploy.id}: a create needs a CREATED event")
        for event in deploy_events:
            if event.deploy_id != deploy.id:
                raise ValidationError(
                    f"deploy {deploy.id}: its create carries an event of {event.deploy_id!r:.20}"
                )
    for event in chain((e for _deploy, own in creates for e in own), events):
        doc = DeployEvent.from_new(event, 1).to_doc()
        try:
            _event_from_doc(doc)
            orjson.dumps(doc)
        except (_BadDoc, orjson.JSONEncodeError) as exc:
            raise ValidationError(f"event {event.event_id!r:.60}: {exc}") from None


class History:
    """The deploy history file. Every call blocks: from async code use `AsyncHistory`.

    Holds no file handle and no TinyDB between calls (another process may have replaced the file
    since); each call reads the file afresh, each write is one lock + one parse + at most one
    durable write. Reads remember the last bytes they parsed (about the file's size plus the
    parsed documents) so an unchanged file is not parsed again: treat returned records as
    read-only. Safe to share between threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep: int = DEFAULT_KEEP,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.path = Path(path)
        self.keep = keep
        self.lock_timeout = lock_timeout
        self._last_read = _LastRead()

    def apply(
        self,
        creates: Sequence[tuple[Deploy, Sequence[NewEvent]]] = (),
        events: Sequence[NewEvent] = (),
    ) -> ApplyResult:
        """Record many creates and event appends in one locked read-modify-write.

        Creates first (each with its own events: a CREATED one at least), then `events`, seq in
        that order. Idempotent: a known deploy id, a known (repo, run id), or a known event_id is a
        no-op returning what is stored. An event of a deploy that is neither stored nor created
        here raises `UnknownDeploy` and nothing is written. Raises `HistoryCorrupt`,
        `HistoryBusy`, `ValidationError`, or `OSError` (a failed write: retry with the same ids).
        """
        _check_new(creates, events)
        with _exclusive(self.path, self.lock_timeout):
            _remove_orphans(self.path)
            # A fresh TinyDB per operation: no stale _next_id or query cache.
            db = TinyDB(self.path, storage=HistoryStorage)
            storage = cast(HistoryStorage, db.storage)
            batch = _Batch(storage.snapshot)
            ids = [batch.create(deploy, deploy_events) for deploy, deploy_events in creates]
            stored = tuple(batch.append(event) for event in events)
            batch.prune(self.keep)
            if batch.save(db):
                storage.flush()
            return ApplyResult(
                records=tuple(batch.record(i) for i in ids),
                events=stored,
                created=tuple(batch.deploys),
                pruned=tuple(batch.pruned),
            )

    def create_deploy(self, deploy: Deploy, events: Sequence[NewEvent]) -> CreateResult:
        """Record a new deploy and its first events (a CREATED one at least) in one write."""
        result = self.apply([(deploy, events)])
        return CreateResult(result.records[0], result.pruned, deploy.id in result.created)

    def append_events(self, events: Sequence[NewEvent]) -> list[DeployEvent]:
        """Append events to stored deploys; returns the stored events in the same order."""
        return cast(list[DeployEvent], list(self.apply(events=events).events))

    def records(
        self, repo: str | None = None, environment: str | None = None
    ) -> list[DeployRecord]:
        """Deploys (optionally of one repo and/or environment), newest first."""
        snap = self._last_read.load(self.path)
        return _newest_first(
            [
                snap.record(deploy_id)
                for deploy_id, deploy in snap.deploys.items()
                if (repo is None or deploy.repo == repo)
                and (environment is None or deploy.environment == environment)
            ]
        )

    def record(self, deploy_id: str) -> DeployRecord:
        snap = self._last_read.load(self.path)
        if deploy_id not in snap.deploys:
            raise UnknownDeploy(deploy_id)
        return snap.record(deploy_id)

    def find_by_run(self, repo: str, run_id: int) -> DeployRecord | None:
        """The deploy recording this GitHub run (as its identity's run id or a RUN_LINKED event)."""
        snap = self._last_read.load(self.path)
        deploy_id = snap.runs.get((repo, run_id))
        return snap.record(deploy_id) if deploy_id is not None else None

    def environments(self) -> list[tuple[str, str]]:
        """Every (repo, environment) with at least one deploy, sorted."""
        return sorted(self._last_read.load(self.path).members)


class AsyncHistory:
    """`History` for asyncio code: each call runs in a worker thread, because a call parses the
    whole file and may wait for another process's lock, and the TUI and servers must keep their
    event loop responsive."""

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
        return await asyncio.to_thread(self.history.records, repo, environment)

    async def record(self, deploy_id: str) -> DeployRecord:
        return await asyncio.to_thread(self.history.record, deploy_id)

    async def find_by_run(self, repo: str, run_id: int) -> DeployRecord | None:
        return await asyncio.to_thread(self.history.find_by_run, repo, run_id)

    async def environments(self) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self.history.environments)
