"""The history's remembered state: own writes keep it current without parsing the file again,
it equals what a fresh parse of the written file gives, and a preview shows one environment
before the whole file is validated without ever hiding damage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest

from tests.unit.history_samples import REPO, created, make_deploy, note
from vmkit_tui.domain.models import Deploy, EventKind, NewEvent
from vmkit_tui.store.history import History, HistoryCorrupt
from vmkit_tui.store.history import documents as documents_module
from vmkit_tui.store.history.documents import _parse, _Snapshot


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.json"


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every validation of a whole file (`_index`), however it is reached."""
    calls: list[int] = []
    real = documents_module._index

    def counting(path: Path, data: object) -> _Snapshot:
        calls.append(1)
        return real(path, data)

    monkeypatch.setattr(documents_module, "_index", counting)
    return calls


def indexes(snap: _Snapshot) -> dict[str, object]:
    return {
        "deploys": snap.deploys,
        "deploy_keys": snap.deploy_keys,
        "members": snap.members,
        "events": snap.events,
        "event_keys": snap.event_keys,
        "events_of": snap.events_of,
        "runs": snap.runs,
        "max_seq": snap.max_seq,
    }


def remembered(history: History) -> _Snapshot:
    snap = history._last_read._snapshot
    assert snap is not None
    return snap


def test_the_snapshot_kept_after_writes_equals_a_fresh_parse(path: Path) -> None:
    rng = random.Random(13)
    history = History(path, keep=3)  # small: most creates prune
    ids: list[str] = []
    for n in range(60):
        env = f"e{rng.randrange(3)}"
        creates: list[tuple[Deploy, list[NewEvent]]] = []
        for _ in range(rng.randrange(3)):
            run_id = rng.choice([None, rng.randrange(10**6)])
            deploy = make_deploy(rng.randrange(100), environment=env, run_id=run_id)
            creates.append((deploy, [created(deploy)]))
        live = [i for i in ids if i in remembered(history).deploys] if ids else []
        events = [note(rng.choice(live), f"n{n}") for _ in range(rng.randrange(3)) if live]
        if live and rng.random() < 0.3:
            run = {"run_id": rng.randrange(10**6)}
            events.append(
                NewEvent(
                    rng.choice(live), EventKind.RUN_LINKED, created(make_deploy()).at, data=run
                )
            )
        if rng.random() < 0.2 and creates:  # a create repeated: an idempotent no-op
            creates.append(creates[0])
        result = history.apply(creates, events)
        ids.extend(deploy.id for deploy, _ in creates)
        fresh = _parse(path, path.read_bytes())
        assert indexes(remembered(history)) == indexes(fresh)
        assert remembered(history).data == json.loads(path.read_bytes())
        assert result.touched == tuple(fresh.record(r.id) for r in result.touched), (
            "touched records are the stored ones"
        )
    assert remembered(history).members, "the run created deploys"


def test_own_writes_are_not_parsed_again(path: Path, parses: list[int]) -> None:
    history = History(path)
    deploy = make_deploy(1)
    history.create_deploy(deploy, [created(deploy)])
    assert parses == []  # a fresh file: nothing to parse
    before = history.generation
    for n in range(5):
        result = history.append_events([note(deploy.id, f"n{n}")])
        assert result
    assert len(history.records()) == 1
    assert len(history.record(deploy.id).events) == 6
    assert parses == [], "the history parsed a file only it had written"
    assert history.generation == before + 5


def test_a_write_by_someone_else_is_parsed_and_reported(path: Path, parses: list[int]) -> None:
    mine, theirs = History(path), History(path)  # two instances: two processes' views
    deploy = make_deploy(1)
    first = mine.create_deploy(deploy, [created(deploy)])
    synced = mine.apply(events=[note(deploy.id, "mine")]).generation
    theirs.append_events([note(deploy.id, "theirs")])
    parses.clear()
    result = mine.apply(events=[note(deploy.id, "mine again")])
    assert parses == [1], "the other instance's write was parsed once"
    assert result.base != synced, "so the caller knows to read again"
    assert [e.detail for e in result.touched[0].events][-2:] == ["theirs", "mine again"]
    own = mine.apply(events=[note(deploy.id, "and again")])
    assert own.base == result.generation, "nobody else wrote in between"
    assert first.created


def test_preview_equals_the_full_read_and_the_file_is_parsed_once(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = History(path)
    for n in range(6):
        deploy = make_deploy(n, environment=f"e{n % 2}")
        writer.create_deploy(deploy, [created(deploy)])
    size = len(path.read_bytes())
    whole: list[int] = []
    real = orjson.loads
    monkeypatch.setattr(
        documents_module.orjson, "loads", lambda raw: whole.append(len(raw) == size) or real(raw)
    )
    reader = History(path)
    preview = reader.preview(REPO, "e0")
    assert [r.deploy.environment for r in preview] == ["e0"] * 3
    assert not any(whole), "the preview parses its environment's documents only"
    assert preview == reader.records(REPO, "e0")
    assert len(reader.records()) == 6
    assert whole.count(True) == 1


def damage(path: Path, environment: str) -> None:
    """Break one event of a deploy of `environment` (an unknown kind), keeping valid JSON."""
    data = json.loads(path.read_bytes())
    ids = {d["id"] for d in data["deploys"].values() if d["environment"] == environment}
    event = next(e for e in data["events"].values() if e["deploy_id"] in ids)
    event["kind"] = "exploded"
    path.write_bytes(orjson.dumps(data))


def test_preview_shows_a_sound_environment_but_the_full_read_still_reports_damage(
    path: Path,
) -> None:
    writer = History(path)
    for n in range(4):
        deploy = make_deploy(n, environment=f"e{n % 2}")
        writer.create_deploy(deploy, [created(deploy)])
    damage(path, "e1")
    reader = History(path)
    assert len(reader.preview(REPO, "e0")) == 2
    with pytest.raises(HistoryCorrupt, match="exploded"):
        reader.records()
    with pytest.raises(HistoryCorrupt, match="exploded"):  # never remembered as sound
        reader.records(REPO, "e0")
    with pytest.raises(HistoryCorrupt, match="exploded"):
        reader.preview(REPO, "e1")
    with pytest.raises(HistoryCorrupt):
        writer.append_events([note(next(iter(writer._last_read._snapshot.deploys)), "x")])


def test_preview_of_a_truncated_file_raises(path: Path) -> None:
    writer = History(path)
    deploy = make_deploy(1)
    writer.create_deploy(deploy, [created(deploy)])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(HistoryCorrupt, match="truncated"):
        History(path).preview(REPO, "production")


def test_changing_a_parsed_record_never_reaches_the_file(path: Path) -> None:
    deploy = make_deploy(1)
    History(path).create_deploy(deploy, [created(deploy)])
    reader = History(path)  # parses what another instance wrote, then writes from it
    (event,) = reader.record(deploy.id).events
    event.data["title"] = "rewritten"  # type: ignore[index]  # a careless caller
    reader.append_events([note(deploy.id)])
    stored = [e for e in json.loads(path.read_bytes())["events"].values() if e["kind"] == "created"]
    assert stored[0]["data"] == {"title": "Fix checkout"}
