"""The deploy history: one crash-safe TinyDB JSON file that several processes share.

Two TUIs, the CLI and the MCP server may all read and write the same file at once, so every write
is one whole read-modify-write under an exclusive lock, and a write never touches the file in place:
it builds the new file beside it, makes it durable, then atomically swaps it in. Nothing here imports
Textual, and every call blocks (file I/O, lock waits): async code uses `AsyncHistory`.

File format (a TinyDB JSON document, UTF-8, written compactly by orjson; users read and back it up):

    {"deploys": {"1": {...}, ...}, "events": {"1": {...}, ...},
     "meta": {"1": {"format": "vmkit-tui-history", "version": 1}}}

- `deploys`: one document per deploy, its identity, written once and never changed (the fields
  of `Deploy.to_doc()`): `id` (12 hex), `repo` (`owner/name`), `environment`, `sha` (40 hex),
  `triggered_by` (`push`, `manual`, `mcp`), `actor`, `run_id` (int or null), `run_url` (or null),
  `rollback_of` (a deploy id or null), `created_at` (UTC ISO-8601 ending in `Z`).
- `events`: append-only, one document per thing that happened (`DeployEvent.to_doc()`):
  `event_id` (unique: retrying a write never duplicates it), `deploy_id` (a deploy in this file),
  `seq` (strictly increasing in file order, across the whole file), `at` (UTC), `kind`
  (`created`, `run_linked`, `status`, `cancel_requested`, `first_healthy`, `diagnosis`, `note`),
  `status` (a status value or null), `detail` (text) and `data` (an object).
- `meta`: one document naming the format and its version.
- The keys ("1", "2", …) are TinyDB document ids, an internal detail: identities are `id` and
  `event_id`. A deploy's state (status, times, duration) is derived from its events.
- The newest 50 deploys per (repo, environment) are kept; creating one more removes the oldest and
  all its events in the same write.

Guarantees:
- Writes: temp file in the same folder → fsync → `os.replace` → fsync of the folder, under the
  sidecar lock `<file>.lock` held across the whole read-modify-write; a fresh TinyDB per operation.
  A crash leaves the old or the new file, never a mix; a left-over temp file is removed by the
  next write. An error raised *after* the swap (e.g. the folder fsync) may mean "committed":
  retrying with the same event ids is always safe.
- Reads take no lock (the swap is atomic) and parse the file once per call.
- A damaged file (truncated, duplicate keys, wrong shape, bad documents, not UTF-8, unreadable)
  raises `HistoryCorrupt` saying what and where; it is never rewritten or emptied automatically,
  and every write refuses to run until it is repaired or renamed by `move_aside`. A missing or
  empty file is a fresh history. The folder is created 0700, the file is 0600.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
import platformdirs
from filelock import FileLock, Timeout
from tinydb import TinyDB
from tinydb.storages import Storage

from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    ValidationError,
    utcnow,
)

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_LOCK_TIMEOUT",
    "FORMAT",
    "VERSION",
    "ApplyResult",
    "AsyncHistory",
    "CreateResult",
    "History",
    "HistoryBusy",
    "HistoryCorrupt",
    "HistoryError",
    "HistoryStorage",
    "UnknownDeploy",
    "default_history_path",
    "move_aside",
]

FORMAT = "vmkit-tui-history"
VERSION = 1
DEFAULT_KEEP = 50
DEFAULT_LOCK_TIMEOUT = 10.0

DEPLOYS, EVENTS, META = "deploys", "events", "meta"
_DEPLOY_FIELDS = frozenset(
    (
        "id",
        "repo",
        "environment",
        "sha",
        "triggered_by",
        "actor",
        "run_id",
        "run_url",
        "rollback_of",
        "created_at",
    )
)
_EVENT_FIELDS = frozenset(
    ("event_id", "deploy_id", "seq", "at", "kind", "status", "detail", "data")
)
# All of an event document's fields in one C call (KeyError if one is missing).
_event_fields = itemgetter("event_id", "deploy_id", "seq", "at", "kind", "status", "detail", "data")
_KINDS = {kind.value: kind for kind in EventKind}
_STATUSES = {status.value: status for status in Status}
_new_tuple = tuple.__new__
_CORRUPT_ADVICE = (
    "Nothing was changed, and writes are refused until the file is repaired or moved aside "
    "(`vmkit-tui history --move-aside` renames it to <name>.corrupt-<UTC time> and a fresh "
    "history starts)."
)


def default_history_path() -> Path:
    """`<user data dir>/vmkit/history.json`; creates nothing (the first write does)."""
    return Path(platformdirs.user_data_dir("vmkit", appauthor=False)) / "history.json"


class HistoryError(Exception):
    """Base of every history error the UI shows as one clear message."""


class HistoryBusy(HistoryError):
    """Another process held the history lock longer than the timeout."""


class HistoryCorrupt(HistoryError):
    """The history file cannot be trusted; it is left exactly as it is."""

    def __init__(self, path: Path, problem: str, where: str, advice: str = _CORRUPT_ADVICE) -> None:
        self.path, self.problem, self.where = path, problem, where
        super().__init__(f"history file {path} {problem} ({where}). {advice}")


class UnknownDeploy(HistoryError, KeyError):
    """No deploy with this id in the history (never created, or pruned)."""

    def __init__(self, deploy_id: str) -> None:
        self.deploy_id = deploy_id
        super().__init__(deploy_id)

    def __str__(self) -> str:
        return f"no deploy {self.deploy_id!r} in the history"


class _BadDoc(ValueError):
    """One document breaks the format; the caller says where (file) or whose (new input)."""


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _parse_time(value: object, name: str) -> datetime:
    """A document's timestamp field → an aware UTC datetime (parsed once: checking it is
    parsing it)."""
    if type(value) is not str:
        raise _BadDoc(f"field '{name}' is a JSON {_json_type(value)}, not a timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _BadDoc(f"field '{name}' is not an ISO-8601 timestamp: {value!r:.40}") from None
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        raise _BadDoc(f"field '{name}' has no time zone: {value!r:.40}")
    return moment.astimezone(UTC)


def _missing(doc: dict[str, Any], fields: frozenset[str]) -> str:
    return ", ".join(repr(name) for name in sorted(fields - doc.keys()))


def _deploy_from_doc(doc: object) -> Deploy:
    """A deploy document → `Deploy`, with the type checks the dataclass leaves out."""
    if type(doc) is not dict:
        raise _BadDoc(f"is a JSON {_json_type(doc)}, not an object")
    if not doc.keys() >= _DEPLOY_FIELDS:
        raise _BadDoc(f"missing field(s) {_missing(doc, _DEPLOY_FIELDS)}")
    if type(doc["actor"]) is not str:
        raise _BadDoc("field 'actor' is not a string")
    if doc["run_id"] is not None and type(doc["run_id"]) is not int:
        raise _BadDoc("field 'run_id' is neither an integer nor null")
    if doc["run_url"] is not None and type(doc["run_url"]) is not str:
        raise _BadDoc("field 'run_url' is neither a string nor null")
    _parse_time(doc["created_at"], "created_at")
    try:
        return Deploy.from_doc(doc)
    except (TypeError, ValueError) as exc:
        raise _BadDoc(str(exc)) from None


def _event_from_doc(doc: object) -> DeployEvent:
    """One event document → `DeployEvent`, checking every field while building it (order,
    uniqueness and references are the caller's), in one pass: the history's cold read makes
    tens of thousands of these."""
    if type(doc) is not dict:
        raise _BadDoc(f"is a JSON {_json_type(doc)}, not an object")
    try:
        event_id, deploy_id, seq, at, kind_value, status_value, detail, data = _event_fields(doc)
    except KeyError:
        raise _BadDoc(f"missing field(s) {_missing(doc, _EVENT_FIELDS)}") from None
    if type(event_id) is not str or not event_id:
        raise _BadDoc("field 'event_id' is not a non-empty string")
    if type(deploy_id) is not str:
        raise _BadDoc("field 'deploy_id' is not a string")
    if type(seq) is not int or seq < 1:
        raise _BadDoc("field 'seq' is not a positive integer")
    kind = _KINDS.get(kind_value) if type(kind_value) is str else None
    if kind is None:
        raise _BadDoc(f"field 'kind' is not an event kind: {kind_value!r:.40}")
    status = _STATUSES.get(status_value) if type(status_value) is str else None
    if status is None and status_value is not None:
        raise _BadDoc(f"field 'status' is not a status: {status_value!r:.40}")
    if type(detail) is not str:
        raise _BadDoc("field 'detail' is not a string")
    if type(data) is not dict:
        raise _BadDoc("field 'data' is not an object")
    if kind is EventKind.RUN_LINKED and type(data.get("run_id", 0)) is not int:
        raise _BadDoc("a run_linked event's data.run_id is not an integer")
    moment = _parse_time(at, "at")
    # tuple.__new__ is what DeployEvent(...) runs, minus a Python-level call.
    return _new_tuple(DeployEvent, (event_id, deploy_id, seq, moment, kind, status, detail, data))


def _age(deploy: Deploy, first_seq: int) -> tuple[datetime, int]:
    """Sort key, oldest first: creation time, then the deploy's first event."""
    return deploy.created_at, first_seq


def _newest_first(records: list[DeployRecord]) -> list[DeployRecord]:
    records.sort(key=lambda r: _age(r.deploy, r.events[0].seq if r.events else 0), reverse=True)
    return records


@dataclass(slots=True)
class _Snapshot:
    """One validated file state plus the indexes every operation needs (built in the same pass)."""

    data: dict[str, Any] | None  # None: a fresh history (missing or empty file)
    deploys: dict[str, Deploy] = field(default_factory=dict)
    deploy_keys: dict[str, str] = field(default_factory=dict)  # deploy id → TinyDB doc id
    members: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (repo, env) → ids
    events: dict[str, DeployEvent] = field(default_factory=dict)  # event_id → event
    event_keys: dict[str, str] = field(default_factory=dict)  # event_id → TinyDB doc id
    events_of: dict[str, tuple[DeployEvent, ...]] = field(default_factory=dict)  # seq order
    runs: dict[tuple[str, int], str] = field(default_factory=dict)  # (repo, run id) → deploy id
    max_seq: int = 0
    built: dict[str, DeployRecord] = field(default_factory=dict)  # records already made

    def first_seq(self, deploy_id: str) -> int:
        events = self.events_of.get(deploy_id)
        return events[0].seq if events else 0

    def record(self, deploy_id: str, extra: Sequence[DeployEvent] = ()) -> DeployRecord:
        """The stored record (built once per snapshot), plus `extra` events not yet written."""
        record = self.built.get(deploy_id)
        if record is None:
            # Already in seq order: the file's seq strictly increases (checked by _index).
            stored = self.events_of[deploy_id]
            record = self.built[deploy_id] = DeployRecord(self.deploys[deploy_id], stored)
        return DeployRecord.build(record.deploy, [*record.events, *extra]) if extra else record


def _index(path: Path, data: object) -> _Snapshot:
    """Validate the whole parsed file and index it, in one pass over the documents."""
    if type(data) is not dict:
        raise HistoryCorrupt(
            path, f"holds a JSON {_json_type(data)}, not an object of tables", "top level"
        )
    for name in (DEPLOYS, EVENTS, META):
        if name not in data:
            raise HistoryCorrupt(path, f"has no '{name}' table", "top level")
        if type(data[name]) is not dict:
            raise HistoryCorrupt(
                path, f"has a JSON {_json_type(data[name])} as a table", f"table '{name}'"
            )
    _check_meta(path, data[META])
    snap = _Snapshot(data)
    events_of: dict[str, list[DeployEvent]] = {}
    for key, doc in data[DEPLOYS].items():
        try:
            if not key.isdigit():
                raise _BadDoc(f"its document id is not a number: {key!r:.20}")
            deploy = _deploy_from_doc(doc)
            if deploy.id in snap.deploys:
                raise _BadDoc(f"deploy {deploy.id} is already in the table")
        except _BadDoc as exc:
            where = f"table 'deploys', document {key}"
            raise HistoryCorrupt(path, f"has a bad deploy: {exc}", where) from None
        snap.deploys[deploy.id] = deploy
        snap.deploy_keys[deploy.id] = key
        events_of[deploy.id] = []
        snap.members.setdefault((deploy.repo, deploy.environment), []).append(deploy.id)
        if deploy.run_id is not None:
            snap.runs.setdefault((deploy.repo, deploy.run_id), deploy.id)
    last_seq = 0
    events, event_keys, runs = snap.events, snap.event_keys, snap.runs
    for key, doc in data[EVENTS].items():
        try:
            event = _event_from_doc(doc)
        except _BadDoc as exc:
            where = f"table 'events', document {key}"
            raise HistoryCorrupt(path, f"has a bad event: {exc}", where) from None
        event_id, deploy_id, seq = event.event_id, event.deploy_id, event.seq
        problem = ""
        if not key.isdigit():
            problem = f"has a document id that is not a number: {key!r:.20}"
        elif event_id in events:
            problem = f"holds event {event_id!r:.60} twice"
        elif seq <= last_seq:
            problem = f"has seq {seq} after seq {last_seq} (seq must strictly increase)"
        elif deploy_id not in events_of:
            problem = f"has an event of deploy {deploy_id!r:.20}, which is not in 'deploys'"
        if problem:
            raise HistoryCorrupt(path, problem, f"table 'events', document {key}")
        last_seq = seq
        events[event_id] = event
        event_keys[event_id] = key
        events_of[deploy_id].append(event)
        if event.kind is EventKind.RUN_LINKED and "run_id" in event.data:
            repo = snap.deploys[deploy_id].repo
            runs.setdefault((repo, event.data["run_id"]), deploy_id)
    snap.max_seq = last_seq
    snap.events_of = {deploy_id: tuple(events) for deploy_id, events in events_of.items()}
    return snap


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    marker = next((d for d in meta.values() if type(d) is dict and d.get("format") == FORMAT), None)
    if marker is None:
        raise HistoryCorrupt(path, f"has no {{'format': '{FORMAT}'}} document", "table 'meta'")
    if marker.get("version") != VERSION:
        raise HistoryCorrupt(
            path,
            f"has format version {marker.get('version')!r:.20}; this vmkit-tui reads version "
            f"{VERSION} only (a newer vmkit-tui wrote it? upgrade)",
            "table 'meta'",
        )


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that repeated a key (marked by the slow strict parse)."""

    duplicate: str


def _mark_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _DuplicateKeys(obj)
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _first_duplicate(node: object, trail: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    if isinstance(node, _DuplicateKeys):
        return trail, node.duplicate
    children: Iterator[tuple[str, object]]
    if isinstance(node, dict):
        children = iter(node.items())
    elif isinstance(node, list):
        children = ((str(i), item) for i, item in enumerate(node))
    else:
        return None
    for key, child in children:
        found = _first_duplicate(child, (*trail, key))
        if found:
            return found
    return None


def _describe(trail: tuple[str, ...]) -> str:
    if not trail:
        return "top level"
    where = f"table '{trail[0]}'"
    if len(trail) > 1:
        where += f", document {trail[1]}"
    if len(trail) > 2:
        where += f", field {'.'.join(trail[2:])}"
    return where


def _check_duplicates(path: Path, raw: bytes) -> None:
    """Reject repeated keys, which a torn in-place write leaves and which parsers silently merge.

    Only reached when the bytes are not exactly what orjson writes for the parsed data: a file
    this module wrote round-trips byte for byte (and then cannot hold a duplicate), so the costly
    strict parse runs only for files written by something else (stock TinyDB, an editor, damage).
    """
    found = _first_duplicate(json.loads(raw, object_pairs_hook=_mark_duplicates), ())
    if found:
        trail, key = found
        problem = f"repeats the key {key!r:.40} (a torn in-place write or a bad hand merge)"
        raise HistoryCorrupt(path, problem, _describe(trail))


def _parse_error(path: Path, raw: bytes, exc: orjson.JSONDecodeError) -> HistoryCorrupt:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return HistoryCorrupt(path, "is not valid UTF-8", f"byte offset {bad.start}")
    offset = len(text[: exc.pos].encode())
    where = f"byte offset {offset}, line {exc.lineno}, column {exc.colno}"
    if offset >= len(raw.rstrip()):
        return HistoryCorrupt(path, "is truncated: it ends in the middle of the JSON", where)
    return HistoryCorrupt(path, f"is not valid JSON: {exc.msg}", where)


def _read_raw(path: Path) -> bytes:
    """The file's bytes right now (b"" when there is no file yet)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise HistoryCorrupt(
            path,
            f"cannot be read: {exc.strerror or exc}",
            "whole file",
            "Nothing was changed; fix its permissions (it should be yours, mode 0600).",
        ) from None


def _parse(path: Path, raw: bytes) -> _Snapshot:
    """Parse (once) and validate the file's bytes."""
    if not raw.strip():
        return _Snapshot(None)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _parse_error(path, raw, exc) from None
    if orjson.dumps(data) != raw:
        _check_duplicates(path, raw)
    return _index(path, data)


class _LastRead:
    """The last bytes parsed and their snapshot, so an unchanged file is not parsed again.

    Every call still reads the file fresh; comparing 5 MB takes about a millisecond, parsing and
    validating them about a hundred (and holds the GIL, stalling a UI thread). Damaged bytes are
    never remembered, so they raise on every call.
    """

    def __init__(self) -> None:
        self._last: tuple[bytes, _Snapshot] | None = None

    def load(self, path: Path) -> _Snapshot:
        raw = _read_raw(path)
        last = self._last
        if last is not None and last[0] == raw:
            return last[1]
        snapshot = _parse(path, raw)
        self._last = (raw, snapshot)
        return snapshot


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
    other exactly like separate processes do.
    """
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


def move_aside(path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Path:
    """Rename the history file to `<name>.corrupt-<UTC YYYYmmddTHHMMSSZ>` (never overwriting an
    earlier one) so a fresh history starts; called explicitly, never automatically. The bytes
    are kept for recovery by hand. Raises FileNotFoundError if there is no file."""
    path = Path(path)
    with _exclusive(path, lock_timeout):
        stem = f"{path.name}.corrupt-{utcnow():%Y%m%dT%H%M%SZ}"
        target, n = path.with_name(stem), 1
        while target.exists():
            target, n = path.with_name(f"{stem}-{n}"), n + 1
        os.rename(path, target)
        _fsync_dir(path.parent)
    return target
