"""A damaged history file: one clear error saying what and where, the bytes never touched,
every write refused, and `move_aside` as the explicit way out."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.unit.history_samples import REPO, created, make_deploy, note
from vmkit_tui.store.history import History, HistoryCorrupt, HistoryUnusable, move_aside

Damage = Callable[[dict], bytes]


def pairs_json(pairs: list[tuple[str, object]]) -> bytes:
    """A JSON object that may repeat keys (which no dict can hold); bytes values are raw JSON."""
    return (
        b"{"
        + b",".join(
            orjson.dumps(k) + b":" + (v if isinstance(v, bytes) else orjson.dumps(v))
            for k, v in pairs
        )
        + b"}"
    )


def with_tables(data: dict, **raw_tables: bytes) -> bytes:
    """The whole file, some tables given as raw JSON."""
    return pairs_json([(name, raw_tables.get(name, table)) for name, table in data.items()])


def edited(table: str, key: str, **fields: object) -> Damage:
    def damage(data: dict) -> bytes:
        data[table][key].update(fields)
        return orjson.dumps(data)

    return damage


def without_field(table: str, key: str, name: str) -> Damage:
    def damage(data: dict) -> bytes:
        del data[table][key][name]
        return orjson.dumps(data)

    return damage


def replaced(table: str, value: object) -> Damage:
    def damage(data: dict) -> bytes:
        data[table] = value
        return orjson.dumps(data)

    return damage


def duplicate_event_key(data: dict) -> bytes:
    events = list(data["events"].items())
    last_key, last = events[-1]
    forged = dict(last, event_id="f" * 32, seq=last["seq"] + 1)
    return with_tables(data, events=pairs_json([*events, (last_key, forged)]))


def duplicate_field(data: dict) -> bytes:
    first = pairs_json([*data["deploys"]["1"].items(), ("sha", "f" * 40)])
    return with_tables(data, deploys=pairs_json([("1", first), ("2", data["deploys"]["2"])]))


CASES: dict[str, tuple[Damage, str, str]] = {
    "truncated": (lambda d: orjson.dumps(d)[:-300], "truncated", "byte offset"),
    "stale tail after a shorter rewrite": (
        lambda d: orjson.dumps(d) + b'"}}}',
        "not valid JSON",
        "byte offset",
    ),
    "duplicate document id": (duplicate_event_key, "repeats the key '3'", "table 'events'"),
    "duplicate field": (duplicate_field, "repeats the key 'sha'", "table 'deploys', document 1"),
    "a list instead of an object": (lambda d: b"[1, 2]", "JSON array", "top level"),
    "missing table": (
        lambda d: orjson.dumps({"deploys": {}, "meta": d["meta"]}),
        "no 'events'",
        "",
    ),
    "table is a list": (replaced("events", []), "JSON array as a table", "table 'events'"),
    "no format marker": (replaced("meta", {}), "vmkit-tui-history", "table 'meta'"),
    "newer format": (
        edited("meta", "1", version=2),
        "format version 2",
        "table 'meta'",
    ),
    "deploy missing a field": (
        without_field("deploys", "2", "sha"),
        "missing field(s) 'sha'",
        "table 'deploys', document 2",
    ),
    "deploy with a bad sha": (
        edited("deploys", "1", sha="HEAD"),
        "not a full commit SHA",
        "document 1",
    ),
    "deploy document is a string": (
        replaced("deploys", {"1": "x"}),
        "JSON string, not an object",
        "document 1",
    ),
    "document id not a number": (
        lambda d: orjson.dumps({**d, "deploys": {"one": d["deploys"]["1"]}, "events": {}}),
        "not a number",
        "document one",
    ),
    "bad event timestamp": (
        edited("events", "2", at="yesterday"),
        "field 'at' is not an ISO-8601 timestamp",
        "table 'events', document 2",
    ),
    "naive event timestamp": (
        edited("events", "2", at="2026-01-01T12:00:00"),
        "no time zone",
        "document 2",
    ),
    "unknown event kind": (edited("events", "1", kind="exploded"), "event kind", "document 1"),
    "event missing a field": (
        without_field("events", "3", "seq"),
        "missing field(s) 'seq'",
        "document 3",
    ),
    "seq not increasing": (edited("events", "3", seq=1), "seq must strictly increase", "3"),
    "event of a missing deploy": (
        edited("events", "3", deploy_id="0123456789ab"),
        "not in 'deploys'",
        "document 3",
    ),
    "event id twice": (
        lambda d: edited("events", "3", event_id=d["events"]["1"]["event_id"])(d),
        "twice",
        "document 3",
    ),
    "deploy id twice": (
        lambda d: edited("deploys", "2", id=d["deploys"]["1"]["id"])(d),
        "already in the table",
        "document 2",
    ),
    "not UTF-8": (
        lambda d: orjson.dumps(d).replace(b"Fix checkout", b"Fix \xff\xfeheckout"),
        "not valid UTF-8",
        "byte offset",
    ),
    "zero-filled": (lambda d: b"\0" * 4096, "not valid JSON", "byte offset 0"),
}


@pytest.fixture
def healthy(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "history.json"
    history = History(path)
    first, second = make_deploy(1, run_id=11), make_deploy(2)
    history.create_deploy(first, [created(first)])
    history.create_deploy(second, [created(second), note(second.id)])
    return path, orjson.loads(path.read_bytes())


def assert_refused(path: Path, original: bytes, message: tuple[str, str]) -> None:
    history = History(path)
    newcomer = make_deploy(9)
    attempts: list[Callable[[], object]] = [
        history.records,
        history.environments,
        lambda: history.record("0123456789ab"),
        lambda: history.find_by_run(REPO, 11),
        lambda: history.create_deploy(newcomer, [created(newcomer)]),
        lambda: history.append_events([note("0123456789ab")]),
        lambda: history.apply([(newcomer, [created(newcomer)])], []),
    ]
    for attempt in attempts:
        with pytest.raises(HistoryCorrupt) as caught:
            attempt()
        text = str(caught.value)
        assert str(path) in text and message[0] in text and message[1] in text, text
        assert path.read_bytes() == original
    assert sorted(os.listdir(path.parent)) == ["history.json", "history.json.lock"]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_damage_is_reported_and_never_written_over(healthy: tuple[Path, dict], case: str) -> None:
    path, data = healthy
    damage, problem, where = CASES[case]
    original = damage(data)
    path.write_bytes(original)
    assert_refused(path, original, (problem, where))
    with pytest.raises(HistoryCorrupt, match="move-aside"):
        History(path).records()


@pytest.mark.parametrize("cut", [1, 2, 17, 100, 333, 500, 700, 901])
def test_every_truncation_is_caught(healthy: tuple[Path, dict], cut: int) -> None:
    path, data = healthy
    original = orjson.dumps(data)[:cut]
    path.write_bytes(original)
    assert_refused(path, original, ("history file", "byte offset"))


def test_a_directory_is_named_as_such_and_never_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.mkdir()
    (path / "keep").write_text("mine")
    said = "is a directory, not a history file"
    with pytest.raises(HistoryUnusable, match=said):
        History(path).records()
    with pytest.raises(HistoryUnusable, match=said):
        History(path).append_events([note("0123456789ab")])
    with pytest.raises(HistoryUnusable, match=said):
        move_aside(path)
    assert path.is_dir() and (path / "keep").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "history.json.lock"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_reported(healthy: tuple[Path, dict]) -> None:
    path, _data = healthy
    path.chmod(0)
    try:
        with pytest.raises(HistoryCorrupt, match=r"Permission denied.*permissions"):
            History(path).records()
    finally:
        path.chmod(0o600)


def test_move_aside_keeps_the_bytes_and_a_fresh_history_starts(
    healthy: tuple[Path, dict],
) -> None:
    path, data = healthy
    damaged = orjson.dumps(data)[:-10]
    path.write_bytes(damaged)
    moved = move_aside(path)
    assert re.fullmatch(r"history\.json\.corrupt-\d{8}T\d{6}Z", moved.name), moved.name
    assert moved.parent == path.parent and moved.read_bytes() == damaged
    assert not path.exists()
    history = History(path)
    assert history.records() == []
    deploy = make_deploy(3)
    history.create_deploy(deploy, [created(deploy)])
    assert [r.id for r in history.records()] == [deploy.id]
    path.write_bytes(b"[]")
    again = move_aside(path)  # within the same second: never overwrites the first
    assert again != moved and moved.read_bytes() == damaged and again.read_bytes() == b"[]"


def test_move_aside_without_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        move_aside(tmp_path / "history.json")
