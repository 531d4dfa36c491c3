"""Reading the history file: its format, the checks of every stored document, the messages
that say what is damaged and where, and the validated, indexed `_Snapshot` of one file state.

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

A damaged file (truncated, duplicate keys, wrong shape, bad documents, not UTF-8, unreadable)
raises `HistoryCorrupt` saying what and where; it is never rewritten or emptied automatically,
and every write refuses to run until it is repaired or renamed by `move_aside`. A missing or
empty file is a fresh history.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from vmkit_tui.domain.models import Deploy, DeployEvent, DeployRecord, EventKind, Status
from vmkit_tui.store.history.errors import HistoryCorrupt, HistoryUnusable
from vmkit_tui.store.history.scan import DEPLOY_KEYS, EVENT_KEYS, scan

FORMAT = "vmkit-tui-history"
VERSION = 1

DEPLOYS, EVENTS, META = "deploys", "events", "meta"
_DEPLOY_FIELDS = frozenset(DEPLOY_KEYS)
_EVENT_FIELDS = frozenset(EVENT_KEYS)
# All of an event document's fields in one C call (KeyError if one is missing).
_event_fields = itemgetter(*EVENT_KEYS)
_KINDS = {kind.value: kind for kind in EventKind}
_STATUSES = {status.value: status for status in Status}
_new_tuple = tuple.__new__


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
    # Its own `data`: the document stays in the snapshot and is written back by the next write,
    # so a caller changing a returned record's data must not change the file.
    data = dict(data)
    # tuple.__new__ is what DeployEvent(...) runs, minus a Python-level call.
    return _new_tuple(DeployEvent, (event_id, deploy_id, seq, moment, kind, status, detail, data))


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


def _check_tables(path: Path, data: object) -> None:
    """The top level: an object holding the three tables, each an object."""
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


def _index(path: Path, data: Any) -> _Snapshot:
    """Validate the whole parsed file and index it, in one pass over the documents."""
    _check_tables(path, data)
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
    the history wrote round-trips byte for byte (and then cannot hold a duplicate), so the costly
    strict parse runs only for files written by something else (stock TinyDB, an editor, damage).
    """
    import json  # only for files our writer did not write: not on every start's path

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
    except IsADirectoryError:
        raise HistoryUnusable(path, "a directory") from None
    except OSError as exc:
        raise HistoryCorrupt(
            path,
            f"cannot be read: {exc.strerror or exc}",
            "whole file",
            "Nothing was changed; fix its permissions (it should be yours, mode 0600).",
        ) from None


def _load_json(path: Path, raw: bytes) -> Any:
    """The file's JSON (None for a fresh history), syntax and repeated keys checked; the tables
    and documents are `_index`'s to check."""
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _parse_error(path, raw, exc) from None
    if orjson.dumps(data) != raw:
        _check_duplicates(path, raw)
    return data


def _parse(path: Path, raw: bytes) -> _Snapshot:
    """Parse (once) and validate the file's bytes."""
    data = _load_json(path, raw)
    return _Snapshot(None) if data is None else _index(path, data)


def _preview(path: Path, data: Any, repo: str, environment: str) -> _Snapshot:
    """One environment's part of the parsed file (or of `scan`'s cut-down tables), validated by
    `_index` as if it were the whole file: its deploys and every event that names them, with
    their document ids, in file order. What it returns is exactly what the whole file's snapshot
    holds for that environment, if the whole file is sound; whether it is stays for `_index`
    to say."""
    if data is None:
        return _Snapshot(None)
    _check_tables(path, data)
    deploys = {
        key: doc
        for key, doc in data[DEPLOYS].items()
        if type(doc) is dict and doc.get("repo") == repo and doc.get("environment") == environment
    }
    ids = {doc.get("id") for doc in deploys.values()}
    events = {
        key: doc
        for key, doc in data[EVENTS].items()
        if type(doc) is dict and type(doc.get("deploy_id")) is str and doc["deploy_id"] in ids
    }
    return _index(path, {DEPLOYS: deploys, EVENTS: events, META: data[META]})


class _LastRead:
    """The file state a `History` last read or wrote, so an unchanged file is not parsed again.

    Every call still reads the file and compares its bytes with the remembered ones (5 MB: about
    a millisecond; parsing and validating them takes about a hundred and holds the GIL). A file
    identity check (inode, size, mtime) would be cheaper but is no proof: inodes are reused and
    mtimes are coarse, and a writer trusting a stale state would lose another process's events.
    `generation` counts the states remembered: a caller that saw generation N and later meets
    N + 1 after its own write knows nobody else wrote in between (-1: a state that was not
    remembered, so nothing can be concluded). Damaged bytes are never
    remembered, so they raise on every call. `preview` may remember parsed JSON whose tables
    are not validated yet; `load` validates it before anything else uses it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: bytes | None = None
        self._snapshot: _Snapshot | None = None
        self._pending: Any = None  # the JSON of _raw, not yet validated (see preview)
        self.generation = 0

    def load(self, path: Path) -> tuple[_Snapshot, int]:
        """The file's validated snapshot and its generation."""
        raw = _read_raw(path)
        with self._lock:
            generation, known = self.generation, raw == self._raw
            if known and self._snapshot is not None:
                return self._snapshot, generation
            pending = self._pending
        data = pending if known else _load_json(path, raw)
        snapshot = _Snapshot(None) if data is None else _index(path, data)
        return snapshot, self._remember(raw, snapshot, None, since=generation)

    def preview(self, path: Path, repo: str, environment: str) -> _Snapshot:
        """One environment's documents, validated. From the bytes (`scan`) when they are in our
        writer's form: nothing else is parsed, and damage elsewhere is for the full read to
        find; else from the whole file's JSON, remembered for that read (`_preview`)."""
        raw = _read_raw(path)
        with self._lock:
            generation, known = self.generation, raw == self._raw
            if known and self._snapshot is not None:
                return self._snapshot
            pending = self._pending
        if not known:
            tables = scan(raw, repo, environment)
            if tables is not None:
                return _preview(path, tables, repo, environment)
        data = pending if known else _load_json(path, raw)
        snapshot = _preview(path, data, repo, environment)
        if not known:
            self._remember(raw, None, data, since=generation)
        return snapshot

    def wrote(self, raw: bytes, snapshot: _Snapshot) -> int:
        """Remember what this History just wrote (called with the file lock held)."""
        with self._lock:
            self._raw, self._snapshot, self._pending = raw, snapshot, None
            self.generation += 1
            return self.generation

    def _remember(self, raw: bytes, snapshot: _Snapshot | None, pending: Any, since: int) -> int:
        """Keep what a read found and return its generation, or -1 when another thread
        remembered other bytes meanwhile (they may be newer: never go back to older ones)."""
        with self._lock:
            if raw == self._raw:  # the same state, perhaps remembered by another thread
                if snapshot is not None and self._snapshot is None:
                    self._snapshot, self._pending = snapshot, None
                return self.generation
            if self.generation != since:
                return -1
            self.generation += 1
            self._raw, self._snapshot, self._pending = raw, snapshot, pending
            return self.generation
