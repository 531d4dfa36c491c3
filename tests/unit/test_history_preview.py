"""The preview of one environment, read from the file's bytes without parsing the whole file:
equal to the full read's records for files our writer wrote (interleaved environments, re-runs,
pruning, hostile text), the whole-file path for bytes in any other form, and damage elsewhere
left for the full read to refuse."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.history_samples import REPO, created, make_deploy, note, status
from vmkit_tui.domain.event_ids import rerun_deploy_id
from vmkit_tui.domain.models import EventKind, NewEvent, Status
from vmkit_tui.store.history import History, HistoryCorrupt
from vmkit_tui.store.history import documents as documents_module
from vmkit_tui.store.history.scan import scan

OTHER = "acme/billing"
# "prod" is a prefix of "production"; "production" is in both repos.
PLACES = [(REPO, "production"), (REPO, "prod"), (OTHER, "production"), (OTHER, "qa")]
HOSTILE = [
    'say "hi" \\ back',
    '"deploy_id":"0123456789ab","seq":1',
    '}},"events":{ ]',
    "naïve ünïcödé ✓ 日本",
    "line\nbreak\ttab \x1b[31mred\x1b[0m",
    '{"id":"0123456789ab","repo":"acme/storefront","environment":"prod"',
]


def write_history(path: Path, seed: int = 7) -> History:
    """Many writes, environments interleaved, with re-runs, links, notes and pruning."""
    rng = random.Random(seed)
    history = History(path, keep=6)
    live: list[str] = []
    for n in range(70):
        repo, environment = rng.choice(PLACES)
        run_id = 1000 + n
        deploy = make_deploy(n, repo=repo, environment=environment, run_id=run_id)
        deploy = replace(deploy, actor=rng.choice(["octocat", "we{ir}d", 'q"uote']))
        creates = [(deploy, [created(deploy, rng.choice(HOSTILE))])]
        if rng.random() < 0.2:  # GitHub's "Re-run all jobs": attempt 2 is a deploy of its own
            rerun = replace(deploy, id=rerun_deploy_id(repo, run_id, 2))
            again = NewEvent(rerun.id, EventKind.CREATED, rerun.created_at, data={"run_attempt": 2})
            creates.append((rerun, [again]))
        events = []
        for target in rng.sample(live, min(len(live), 3)):
            events.append(note(target, rng.choice(HOSTILE), hostile=rng.choice(HOSTILE)))
            if rng.random() < 0.3:
                events.append(status(target, rng.choice([Status.RUNNING, Status.SUCCEEDED])))
            if rng.random() < 0.1:
                link = {"run_id": 50_000 + n}
                events.append(NewEvent(target, EventKind.RUN_LINKED, deploy.created_at, data=link))
        result = history.apply(creates, events)
        live = [i for i in [*live, *result.created] if i not in result.pruned]
    return history


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.json"


def test_the_bytes_give_each_environment_exactly_as_the_full_read(path: Path) -> None:
    write_history(path)
    raw = path.read_bytes()
    full = History(path)
    for repo, environment in [*PLACES, (REPO, "nowhere")]:
        assert scan(raw, repo, environment) is not None, "our own writer's bytes are read"
        expected = full.records(repo, environment)
        assert History(path).preview(repo, environment) == expected
    assert sum(len(full.records(repo, env)) for repo, env in PLACES) == len(full.records())
    assert any(r.run_attempt == 2 for r in full.records()), "re-runs are among them"


def test_the_preview_parses_only_its_environment(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_history(path)

    def refuse(path: Path, raw: bytes) -> Any:
        raise AssertionError("the whole file was parsed")

    monkeypatch.setattr(documents_module, "_load_json", refuse)
    preview = History(path).preview(REPO, "production")
    assert preview and {r.deploy.environment for r in preview} == {"production"}


def reorder_first(table: dict[str, Any], key: str, name: str) -> None:
    doc = next(d for d in table.values() if d[key] == name)
    moved = {k: doc[k] for k in reversed(list(doc))}
    doc.clear()
    doc.update(moved)


def some_id(data: dict[str, Any], environment: str) -> str:
    return next(d["id"] for d in data["deploys"].values() if d["environment"] == environment)


REWRITES = {
    "stock TinyDB spacing": lambda data: json.dumps(data).encode(),
    "\\u escapes": lambda data: json.dumps(data, separators=(",", ":")).encode(),
    "a trailing newline": lambda data: orjson.dumps(data) + b"\n",
    "pretty-printed": lambda data: orjson.dumps(data, option=orjson.OPT_INDENT_2),
    "meta first": lambda data: orjson.dumps({k: data[k] for k in ("meta", "deploys", "events")}),
    "a deploy's keys reordered": lambda data: (
        reorder_first(data["deploys"], "environment", "production"),
        orjson.dumps(data),
    )[1],
    "an event's keys reordered": lambda data: (
        reorder_first(data["events"], "deploy_id", some_id(data, "production")),
        orjson.dumps(data),
    )[1],
}


@pytest.mark.parametrize("rewrite", REWRITES, ids=list(REWRITES))
def test_bytes_in_any_other_form_are_read_whole(path: Path, rewrite: str) -> None:
    write_history(path)
    expected = History(path).records(REPO, "production")
    path.write_bytes(REWRITES[rewrite](json.loads(path.read_bytes())))
    assert scan(path.read_bytes(), REPO, "production") is None
    assert History(path).preview(REPO, "production") == expected


def repeat_a_key(path: Path, environment: str) -> None:
    """A torn write's trace: one event of `environment` repeats its `seq` key."""
    data = json.loads(path.read_bytes())
    ids = {d["id"] for d in data["deploys"].values() if d["environment"] == environment}
    key, event = next((k, e) for k, e in data["events"].items() if e["deploy_id"] in ids)
    doc = orjson.dumps(event)
    raw = path.read_bytes().replace(doc, doc[:-1] + b',"seq":' + str(event["seq"]).encode() + b"}")
    assert raw != path.read_bytes(), key
    path.write_bytes(raw)


def test_a_repeated_key_elsewhere_is_for_the_full_read_to_refuse(path: Path) -> None:
    write_history(path)
    repeat_a_key(path, "qa")
    reader = History(path)
    assert reader.preview(REPO, "production"), "the sound environment is shown"
    with pytest.raises(HistoryCorrupt, match="repeats the key 'seq'"):
        reader.records()
    with pytest.raises(HistoryCorrupt, match="repeats the key"):  # never remembered as sound
        reader.records(REPO, "production")


def test_a_repeated_key_in_the_environment_itself_is_refused_by_the_preview(path: Path) -> None:
    write_history(path)
    repeat_a_key(path, "production")
    assert scan(path.read_bytes(), REPO, "production") is None
    with pytest.raises(HistoryCorrupt, match="repeats the key 'seq'"):
        History(path).preview(REPO, "production")


def test_a_fresh_or_empty_history_previews_nothing(path: Path) -> None:
    assert History(path).preview(REPO, "production") == []
    deploy = make_deploy(1, environment="qa")
    History(path).create_deploy(deploy, [created(deploy)])
    assert scan(path.read_bytes(), REPO, "production") is not None
    assert History(path).preview(REPO, "production") == []
    assert [r.id for r in History(path).preview(REPO, "qa")] == [deploy.id]
