"""The history's operations: `History` (blocking; `AsyncHistory` wraps it for asyncio code).

Every write is one `apply`: a batch of creates and event appends laid over the file state read
under the lock, pruned to the newest `keep` deploys per (repo, environment), and saved through
TinyDB (the only module that opens it: every process must use the same storage) in one durable
write. Reads take no lock (the swap is atomic). The file is parsed only when its bytes differ
from what this `History` last read or wrote: after its own write the snapshot is brought up to
date from the batch, so a process that writes repeatedly never re-parses its own writes. A
fresh TinyDB serves each operation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson
import platformdirs

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
    _Snapshot,
)
from vmkit_tui.store.history.durable import (
    DEFAULT_LOCK_TIMEOUT,
    _exclusive,
    _remove_orphans,
)
from vmkit_tui.store.history.errors import UnknownDeploy

if TYPE_CHECKING:
    from tinydb import TinyDB

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


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one `History.apply` did.

    `records`: one per create, in order: the stored record, i.e. the new one or the existing one
    it duplicated (same id, or same repo + run id). `events`: one per appended event, in order:
    the stored event (new, or the one already holding that event_id), or None when it belonged
    to a create of this batch that turned out to be a duplicate. `created`: ids this call added.
    `pruned`: ids removed to keep `keep` per environment (this call's own creates included when
    they are older than all kept ones); their log spools can be deleted. `touched`: the stored
    record, as of this write, of every deploy the call named (its creates and the deploys of
    its events), the pruned ones left out: what a caller shows without reading the file again.
    `base` and `generation`: the history's generation (`History.generation`) this write was
    applied to and the one it left. A caller whose last read or write left `base` knows that
    nobody else wrote since, so `touched` is all that changed; otherwise it reads again.
    """

    records: tuple[DeployRecord, ...]
    events: tuple[DeployEvent | None, ...]
    created: tuple[str, ...]
    pruned: tuple[str, ...]
    touched: tuple[DeployRecord, ...]
    base: int
    generation: int


class CreateResult(NamedTuple):
    record: DeployRecord
    pruned: tuple[str, ...]
    created: bool  # False: the deploy (or one for the same GitHub run) was already recorded


def _is_rerun(events: Sequence[NewEvent]) -> bool:
    """A re-run of a recorded GitHub run is a deploy of its own: its CREATED event names an
    attempt after the first, and its deterministic id (`event_ids.rerun_deploy_id`), not its
    run id, keeps it from being recorded twice."""
    return any(
        event.kind is EventKind.CREATED and event.data.get("run_attempt", 1) != 1
        for event in events
    )


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
        self.saved: tuple[list[Deploy], list[int], list[DeployEvent], list[int]] | None = None

    def deploy(self, deploy_id: str) -> Deploy | None:
        return self.deploys.get(deploy_id) or self.snap.deploys.get(deploy_id)

    def run_holder(self, repo: str, run_id: int) -> str | None:
        key = (repo, run_id)
        return self.runs.get(key) or self.snap.runs.get(key)

    def create(self, deploy: Deploy, events: Sequence[NewEvent]) -> str:
        if self.deploy(deploy.id) is not None:
            return deploy.id
        if deploy.run_id is not None and not _is_rerun(events):
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
        deploys = [d for d in self.deploys.values() if d.id not in gone]
        events = [e for e in self.events.values() if e.deploy_id not in gone]
        stale = [i for i in self.pruned if i in self.snap.deploys]
        if not (deploys or events or stale):
            return False
        deploy_keys: list[int] = []
        event_keys: list[int] = []
        if deploys:
            deploy_keys = db.table(DEPLOYS, cache_size=0).insert_multiple(
                [d.to_doc() for d in deploys]
            )
        if events:
            event_keys = db.table(EVENTS, cache_size=0).insert_multiple(
                [e.to_doc() for e in events]
            )
        self.saved = (deploys, deploy_keys, events, event_keys)
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

    def after(self, data: dict[str, Any]) -> _Snapshot:
        """The snapshot of the file `save` produced (`data`), built from the one before and the
        batch instead of parsing it: the same indexes `_index` would build (the tests compare
        them). The old snapshot is left as it was: readers in other threads may hold it."""
        assert self.saved is not None
        old, gone = self.snap, set(self.pruned)
        members = dict(old.members)
        snap = _Snapshot(
            data,
            deploys=dict(old.deploys),
            deploy_keys=dict(old.deploy_keys),
            members=members,
            events=dict(old.events),
            event_keys=dict(old.event_keys),
            events_of=dict(old.events_of),
            runs=dict(old.runs),
            built=dict(old.built),
        )
        for deploy_id in gone & old.deploys.keys():
            deploy = snap.deploys.pop(deploy_id)
            del snap.deploy_keys[deploy_id]
            for event in snap.events_of.pop(deploy_id):
                del snap.events[event.event_id], snap.event_keys[event.event_id]
            snap.built.pop(deploy_id, None)
            key = (deploy.repo, deploy.environment)
            members[key] = [i for i in members[key] if i != deploy_id]
        if gone:
            snap.runs = {run: holder for run, holder in snap.runs.items() if holder not in gone}
        deploys, deploy_keys, events, event_keys = self.saved
        for deploy, doc_id in zip(deploys, deploy_keys, strict=True):
            snap.deploys[deploy.id] = deploy
            snap.deploy_keys[deploy.id] = str(doc_id)
            snap.events_of[deploy.id] = ()
            key = (deploy.repo, deploy.environment)
            members[key] = [*members.get(key, ()), deploy.id]
        snap.runs.update((run, holder) for run, holder in self.runs.items() if holder not in gone)
        for event, doc_id in zip(events, event_keys, strict=True):
            snap.events[event.event_id] = event
            snap.event_keys[event.event_id] = str(doc_id)
            snap.events_of[event.deploy_id] = (*snap.events_of[event.deploy_id], event)
            snap.built.pop(event.deploy_id, None)
        for key in [key for key, ids in members.items() if not ids]:
            del members[key]
        if events:  # the file's last event is the newest written (seq of unwritten ones unused)
            snap.max_seq = events[-1].seq
        elif gone:  # pruning may have removed the file's last event
            snap.max_seq = max((e[-1].seq for e in snap.events_of.values() if e), default=0)
        else:
            snap.max_seq = old.max_seq
        return snap


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
    since); each call reads the file afresh, each write is one lock + one read + at most one
    durable write. Reads and writes remember the last bytes they saw (about the file's size plus
    the parsed documents), so the file is parsed again only when someone else changed it: treat
    returned records as read-only (a write serialises the remembered documents). Safe to share
    between threads.
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

    @property
    def generation(self) -> int:
        """Counts the file states this History has read or written (see `ApplyResult`)."""
        return self._last_read.generation

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
        # TinyDB is imported at the first write: reads (a first paint) never need it.
        from vmkit_tui.store.history.storage import HistoryStorage, _HistoryDB

        with _exclusive(self.path, self.lock_timeout):
            _remove_orphans(self.path)
            # The state the file holds now (parsed only if another process changed it).
            snapshot, base = self._last_read.load(self.path)
            # A fresh TinyDB per operation: no stale _next_id or query cache.
            db = _HistoryDB(self.path, storage=HistoryStorage, snapshot=snapshot)
            storage = cast(HistoryStorage, db.storage)
            batch = _Batch(snapshot)
            ids = [batch.create(deploy, deploy_events) for deploy, deploy_events in creates]
            stored = tuple(batch.append(event) for event in events)
            batch.prune(self.keep)
            generation = base
            if batch.save(db):
                storage.flush()
                assert storage.written is not None and storage.working is not None
                snapshot = batch.after(storage.working)
                generation = self._last_read.wrote(storage.written, snapshot)
            named = dict.fromkeys(ids)
            named.update((event.deploy_id, None) for event in stored if event is not None)
            gone = set(batch.pruned)
            return ApplyResult(
                records=tuple(batch.record(i) for i in ids),
                events=stored,
                created=tuple(batch.deploys),
                pruned=tuple(batch.pruned),
                touched=tuple(
                    snapshot.record(i) for i in named if i not in gone and i in snapshot.deploys
                ),
                base=base,
                generation=generation,
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
        snap, _generation = self._last_read.load(self.path)
        return _newest_first(
            [
                snap.record(deploy_id)
                for deploy_id, deploy in snap.deploys.items()
                if (repo is None or deploy.repo == repo)
                and (environment is None or deploy.environment == environment)
            ]
        )

    def record(self, deploy_id: str) -> DeployRecord:
        snap, _generation = self._last_read.load(self.path)
        if deploy_id not in snap.deploys:
            raise UnknownDeploy(deploy_id)
        return snap.record(deploy_id)

    def find_by_run(self, repo: str, run_id: int) -> DeployRecord | None:
        """The deploy recording this GitHub run (as its identity's run id or a RUN_LINKED event)."""
        snap, _generation = self._last_read.load(self.path)
        deploy_id = snap.runs.get((repo, run_id))
        return snap.record(deploy_id) if deploy_id is not None else None

    def environments(self) -> list[tuple[str, str]]:
        """Every (repo, environment) with at least one deploy, sorted."""
        return sorted(self._last_read.load(self.path)[0].members)

    def preview(self, repo: str, environment: str) -> list[DeployRecord]:
        """One environment's deploys, newest first, before the rest of the file is validated:
        what a frontend paints first. When the bytes are in our writer's form only this
        environment's documents are parsed (`scan`), else the whole file is parsed as JSON
        (reused by the next full read); either way they are checked like in a full read. The
        rest (damage elsewhere included) is checked by the next full read (`records()` etc.),
        and a frontend must not treat the preview as the whole history until that read
        succeeded. Equal to `records(repo, environment)` whenever that succeeds."""
        snap = self._last_read.preview(self.path, repo, environment)
        return _newest_first([snap.record(i) for i in snap.members.get((repo, environment), ())])
