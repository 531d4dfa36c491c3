"""One environment's documents picked out of the history file's bytes, for a first paint that
costs what that environment costs, not what the whole file costs.

Our writer always writes the whole file as compact orjson (`{"deploys":{…},"events":{…},
"meta":{…}}`, every document's keys in `to_doc()` order), so the documents can be found by what
their bytes must look like: a deploy of (repo, environment) starts `{"id":"<id>","repo":<repo>,
"environment":<environment>`; an event of such a deploy starts `{"event_id":<event id>,
"deploy_id":"<id>",`. Only those documents are parsed. Inside
a JSON string every `"` is escaped, so these patterns cannot start inside one.

Every step checks what it relies on and gives up (None: parse the whole file instead) when the
bytes are not in that form: another writer's spacing or escapes, a hand edit, keys in another
order, a document that does not re-encode to exactly its own bytes, a truncated end. Giving up
is never wrong, only slower; the full read that follows a preview checks everything anyway.
What it cannot see is a document of this environment whose `"environment"` or `"deploy_id"`
key was rewritten with other spacing or escapes inside an otherwise compact file (only a hand
edit does that): the preview then lacks it until the full read, which replaces the preview.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_HEAD = b'{"deploys":{'
_EVENTS_START = b'},"events":{'
# The meta table, last: one flat document (what it says is `_index`'s to check).
_META = re.compile(rb',"meta":(\{"\d+":\{[^{}]*\}\})\}\Z')
_DEPLOY_START = b'{"id":"'
# A deploy document's start up to its environment: its id and its repo, a JSON string.
_DEPLOY_HEAD = re.compile(rb'\{"id":"[0-9a-f]{12}","repo":("(?:[^"\\]|\\.)*"),')
_EVENT_START = b'{"event_id":"'
_FIRST_EVENT = re.compile(rb'"\d+":\{"event_id":"')
# An event document's start up to its deploy_id: its event id, a JSON string.
_EVENT_HEAD = re.compile(rb'\{"event_id":"(?:[^"\\]|\\.)*",')
# Each document's fields, in the order our writer writes them (`to_doc()`); the format's
# checks (documents.py) take them from here too.
DEPLOY_KEYS = (
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
EVENT_KEYS = ("event_id", "deploy_id", "seq", "at", "kind", "status", "detail", "data")


class _NotOurs(Exception):
    """The bytes are not in our writer's form here: parse the whole file instead."""


def scan(raw: bytes, repo: str, environment: str) -> dict[str, Any] | None:
    """The file's tables cut down to one environment's deploys and their events (each with its
    document id, in file order) and the meta table, as the whole file's parse would give them;
    None when the bytes are not in our writer's form."""
    try:
        return _scan(raw, repo, environment)
    except (_NotOurs, orjson.JSONDecodeError):
        return None


def _scan(raw: bytes, repo: str, environment: str) -> dict[str, Any]:
    meta = _META.search(raw, max(0, len(raw) - 256))
    if not raw.startswith(_HEAD) or meta is None:
        raise _NotOurs
    # The deploys table's last document ends with a string (created_at): `"}},"events":{`
    # cannot occur inside a string, nor inside a deploy (no nested objects).
    events_at = raw.find(b'"}' + _EVENTS_START, len(_HEAD)) + 2
    if events_at == 1:
        events_at = len(_HEAD) if raw.startswith(_EVENTS_START, len(_HEAD)) else -1
    events_end = meta.start() - 1  # the events table's closing brace
    first_event = events_at + len(_EVENTS_START)
    if (
        events_at < 0
        or raw[events_end] != ord("}")
        or not (first_event == events_end or _FIRST_EVENT.match(raw, first_event, events_end))
    ):
        raise _NotOurs
    deploys = _deploys(raw, events_at, repo, environment)
    ids = [doc["id"] for doc in deploys.values()]
    events = _events(raw, events_at + len(_EVENTS_START) - 1, events_end, ids) if ids else {}
    return {"deploys": deploys, "events": events, "meta": orjson.loads(meta[1])}


def _deploys(raw: bytes, end: int, repo: str, environment: str) -> dict[str, Any]:
    """The deploys of (repo, environment): every `"environment":<environment>` in the table
    must sit in a deploy that starts `{"id":"<id>","repo":<a repo>,` (then it is ours when that
    repo is `repo`), or the bytes are not ours."""
    needle = b'"environment":' + orjson.dumps(environment)
    want = orjson.dumps(repo)
    found: dict[str, Any] = {}
    at = raw.find(needle, len(_HEAD), end)
    while at >= 0:
        start = raw.rfind(_DEPLOY_START, len(_HEAD), at)
        head = _DEPLOY_HEAD.fullmatch(raw, start, at) if start >= 0 else None
        if head is None:
            raise _NotOurs
        close = _end(raw, _DEPLOY_START, at, end)
        if head[1] == want:
            found[_key_before(raw, start)] = _document(raw, start, close, DEPLOY_KEYS)
        at = raw.find(needle, close, end)
    return found


def _events(raw: bytes, start: int, end: int, ids: list[str]) -> dict[str, Any]:
    """The events of these deploys, found by their `deploy_id` (any occurrence of that key
    with one of these ids must be such a document's, or the bytes are not ours)."""
    pattern = re.compile(b'"deploy_id":"(?:' + b"|".join(map(str.encode, ids)) + b')"')
    found: dict[str, Any] = {}
    floor = start
    for match in pattern.finditer(raw, start, end):
        at = match.start()
        head = raw.rfind(_EVENT_START, floor, at)
        if head < 0 or _EVENT_HEAD.fullmatch(raw, head, at) is None:
            raise _NotOurs
        close = _end(raw, _EVENT_START, match.end(), end)
        found[_key_before(raw, head)] = _document(raw, head, close, EVENT_KEYS)
        floor = close
    return found


def _end(raw: bytes, start_marker: bytes, inside: int, end: int) -> int:
    """Where the document holding position `inside` ends: before the `,"<id>":` of the next
    document (found by how documents of its table start), or at the table's end."""
    following = raw.find(start_marker, inside, end)
    if following < 0:
        return end
    close = raw.rfind(b',"', inside, following)
    if close < 0 or not raw[close + 2 : following - 2].isdigit():
        raise _NotOurs
    return close


def _key_before(raw: bytes, start: int) -> str:
    """The document id written before the document starting at `start`: `{"12":` or `,"12":`."""
    if raw[start - 2 : start] != b'":':
        raise _NotOurs
    quote = raw.rfind(b'"', 0, start - 2)
    key = raw[quote + 1 : start - 2]
    if not key.isdigit() or raw[quote - 1] not in b"{,":
        raise _NotOurs
    return key.decode()


def _document(raw: bytes, start: int, end: int, keys: tuple[str, ...]) -> Any:
    """The document in raw[start:end], if those bytes are exactly how our writer writes it."""
    chunk = raw[start:end]
    doc = orjson.loads(chunk)
    if type(doc) is not dict or tuple(doc) != keys or orjson.dumps(doc) != chunk:
        raise _NotOurs
    return doc
