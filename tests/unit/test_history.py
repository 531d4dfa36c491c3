"""The deploy history on a real file: create, append, dedupe, prune, batch, lock, async facade."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from filelock import FileLock

from tests.unit.history_samples import REPO, created, make_deploy, note, status
from vmkit_tui.domain.models import Deploy, EventKind, NewEvent, Status, ValidationError
from vmkit_tui.store.history import (
    AsyncHistory,
    History,
    HistoryBusy,
    UnknownDeploy,
    default_history_path,
)
from vmkit_tui.store.history import history as history_module
from vmkit_tui.store.history import storage as storage_module


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.json"


@pytest.fixture
def history(path: Path) -> History:
    return History(path)


def file_json(path: Path) -> dict:
    return json.loads(path.read_bytes())


def create(history: History, deploy: Deploy, *more: NewEvent) -> None:
    history.create_deploy(deploy, [created(deploy), *more])


def test_missing_file_is_an_empty_history_and_reading_creates_nothing(path: Path) -> None:
    history = History(path)
    assert history.records() == []
    assert history.environments() == []
    assert history.find_by_run(REPO, 1) is None
    with pytest.raises(UnknownDeploy):
        history.record("0123456789ab")
    assert not path.parent.exists()


def test_empty_file_is_a_fresh_history(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"")
    history = History(path)
    assert history.records() == []
    deploy = make_deploy(1)
    create(history, deploy)
    assert [r.id for r in history.records()] == [deploy.id]


def test_create_writes_the_documented_format_with_private_modes(
    history: History, path: Path
) -> None:
    deploy = make_deploy(1, run_id=7)
    result = history.create_deploy(deploy, [created(deploy, "Add cart")])
    assert result.created and result.pruned == ()
    assert result.record.deploy == deploy and result.record.title == "Add cart"
    data = file_json(path)
    assert list(data) == ["deploys", "events", "meta"]
    assert list(data["meta"].values()) == [{"format": "vmkit-tui-history", "version": 1}]
    assert list(data["deploys"].values()) == [deploy.to_doc()]
    (event,) = data["events"].values()
    assert event["deploy_id"] == deploy.id and event["kind"] == "created" and event["seq"] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert history.record(deploy.id) == result.record


def test_records_newest_first_and_filters(history: History) -> None:
    old = make_deploy(1)
    new = make_deploy(5)
    staging = make_deploy(3, environment="staging")
    other = make_deploy(4, repo="acme/api")
    for deploy in (new, old, staging, other):  # creation order differs from created_at order
        create(history, deploy)
    assert [r.id for r in history.records()] == [new.id, other.id, staging.id, old.id]
    assert [r.id for r in history.records(REPO, "production")] == [new.id, old.id]
    assert [r.id for r in history.records(environment="staging")] == [staging.id]
    assert [r.id for r in history.records(repo="acme/api")] == [other.id]
    assert history.environments() == [
        ("acme/api", "production"),
        (REPO, "production"),
        (REPO, "staging"),
    ]


def test_create_needs_a_created_event_of_its_own_deploy(history: History, path: Path) -> None:
    deploy, other = make_deploy(1), make_deploy(2)
    with pytest.raises(ValidationError, match="CREATED"):
        history.create_deploy(deploy, [note(deploy.id)])
    with pytest.raises(ValidationError, match="carries an event of"):
        history.create_deploy(deploy, [created(deploy), note(other.id)])
    assert not path.exists()


def test_bad_event_input_is_refused_before_anything_is_written(
    history: History, path: Path
) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    before = path.read_bytes()
    with pytest.raises(ValidationError, match="not JSON serializable"):
        history.append_events([note(deploy.id, when=object())])
    with pytest.raises(ValidationError, match="event_id"):
        history.append_events([NewEvent(deploy.id, EventKind.NOTE, deploy.created_at, event_id="")])
    assert path.read_bytes() == before


def test_append_is_idempotent_by_event_id(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    event = status(deploy.id, Status.RUNNING, event_id=f"{deploy.id}:status:running")
    (first,) = history.append_events([event])
    before = path.read_bytes()
    (again,) = history.append_events([event])
    assert again == first and first.seq == 2
    assert path.read_bytes() == before  # a no-op does not even rewrite the file
    assert [e.event_id for e in history.record(deploy.id).events].count(event.event_id) == 1
    assert history.record(deploy.id).status is Status.RUNNING


def test_same_deploy_id_twice_is_a_no_op(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    first = history.create_deploy(deploy, [created(deploy)])
    again = history.create_deploy(deploy, [created(deploy), note(deploy.id)])
    assert not again.created and again.record == first.record
    assert len(file_json(path)["events"]) == 1


def test_same_run_id_creates_one_record(history: History) -> None:
    first = make_deploy(1, run_id=42)
    create(history, first)
    twin = make_deploy(1, run_id=42)  # a second watcher saw the same GitHub run
    result = history.create_deploy(twin, [created(twin)])
    assert not result.created and result.record.id == first.id
    assert [r.id for r in history.records()] == [first.id]
    elsewhere = make_deploy(2, run_id=42, repo="acme/api")  # run ids are per repo
    assert history.create_deploy(elsewhere, [created(elsewhere)]).created
    assert history.find_by_run(REPO, 42).id == first.id  # type: ignore[union-attr]
    assert history.find_by_run("acme/api", 42).id == elsewhere.id  # type: ignore[union-attr]


def test_a_run_linked_later_also_dedupes(history: History) -> None:
    dispatched = make_deploy(1)  # a rollback: its run is unknown when it is recorded
    create(history, dispatched)
    link = NewEvent(dispatched.id, EventKind.RUN_LINKED, dispatched.created_at, data={"run_id": 77})
    history.append_events([link])
    seen = make_deploy(2, run_id=77)
    result = history.create_deploy(seen, [created(seen)])
    assert not result.created and result.record.id == dispatched.id
    assert history.find_by_run(REPO, 77).id == dispatched.id  # type: ignore[union-attr]


def test_events_of_unknown_deploys_are_refused_and_nothing_is_written(
    history: History, path: Path
) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    before = path.read_bytes()
    with pytest.raises(UnknownDeploy) as caught:
        history.append_events([note(deploy.id), note("0123456789ab")])
    assert isinstance(caught.value, KeyError)
    assert "0123456789ab" in str(caught.value)
    assert path.read_bytes() == before


def test_seq_strictly_increases_across_deploys(history: History) -> None:
    a, b = make_deploy(1), make_deploy(2, environment="staging")
    create(history, a)
    create(history, b)
    history.append_events([note(a.id), note(b.id), note(a.id)])
    seqs = [e.seq for r in history.records() for e in r.events]
    assert sorted(seqs) == [1, 2, 3, 4, 5]


def test_apply_batch_is_one_write_with_the_same_rules(
    history: History, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = make_deploy(0, run_id=1000)
    create(history, known)
    writes: list[Path] = []
    real_write = storage_module._write_durably
    monkeypatch.setattr(
        storage_module,
        "_write_durably",
        lambda target, payload: (writes.append(target), real_write(target, payload)),
    )
    deploys = [make_deploy(n, run_id=1000 + n, environment=f"e{n % 4}") for n in range(1, 101)]
    twin = make_deploy(7, run_id=1007, environment="e3")  # same run as deploys[6]
    again = make_deploy(0, run_id=1000)  # same run as the stored one
    creates = [(d, [created(d)]) for d in [*deploys, twin, again]]
    events = [status(d.id, Status.SUCCEEDED) for d in deploys] + [note(twin.id), note(known.id)]
    result = history.apply(creates, events)
    assert len(writes) == 1
    assert len(result.records) == 102 and len(result.created) == 100
    assert result.records[100].id == deploys[6].id and result.records[101].id == known.id
    assert result.events[-2] is None  # an event of a create that turned out to be a duplicate
    assert result.events[-1] is not None and result.events[-1].deploy_id == known.id
    assert all(r.status is Status.SUCCEEDED for r in result.records[:100])
    assert len(history.records()) == 101
    assert [e.seq for e in result.events[:100] if e] == list(range(102, 202))


def test_pruning_keeps_the_newest_per_environment(history: History, path: Path) -> None:
    staging = [make_deploy(n, environment="staging") for n in range(5)]
    for deploy in staging:
        create(history, deploy)
    production = [make_deploy(100 + n) for n in range(60)]
    pruned: list[str] = []
    for deploy in production:
        result = history.create_deploy(deploy, [created(deploy), note(deploy.id)])
        pruned.extend(result.pruned)
    assert pruned == [d.id for d in production[:10]]
    kept = history.records(REPO, "production")
    assert [r.id for r in kept] == [d.id for d in reversed(production[10:])]
    assert all(len(r.events) == 2 for r in kept)
    assert {r.id for r in history.records(environment="staging")} == {d.id for d in staging}
    stored = file_json(path)
    assert not {e["deploy_id"] for e in stored["events"].values()} & set(pruned)
    assert len(stored["deploys"]) == 55 and len(stored["events"]) == 5 + 50 * 2


def test_pruning_in_a_batch_and_an_older_newcomer(path: Path) -> None:
    history = History(path, keep=3)
    deploys = [make_deploy(10 + n) for n in range(5)]
    result = history.apply([(d, [created(d)]) for d in deploys])
    assert result.pruned == (deploys[0].id, deploys[1].id)
    assert [r.id for r in history.records()] == [d.id for d in reversed(deploys[2:])]
    late = make_deploy(1)  # recorded now, but created before every kept deploy
    outcome = history.create_deploy(late, [created(late)])
    assert outcome.pruned == (late.id,)
    assert len(history.records()) == 3 and late.id not in {r.id for r in history.records()}


def test_orphan_temp_files_are_removed_by_the_next_write(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    orphan = path.parent / ".history.json.k3j2.tmp"
    orphan.write_bytes(b'{"half": ')
    unrelated = path.parent / "notes.tmp"
    unrelated.write_bytes(b"keep me")
    history.records()
    assert orphan.exists()  # reads take no lock and write nothing
    history.append_events([note(deploy.id)])
    assert not orphan.exists() and unrelated.exists()


def test_lock_timeout_raises_history_busy(path: Path) -> None:
    history = History(path, lock_timeout=0.2)
    deploy = make_deploy(1)
    create(history, deploy)
    before = path.read_bytes()
    holder = FileLock(str(path) + ".lock")
    with holder, pytest.raises(HistoryBusy, match="busy"):
        history.append_events([note(deploy.id)])
    assert path.read_bytes() == before
    history.append_events([note(deploy.id)])  # lock released: works again


def test_a_reader_sees_another_instance_writes(path: Path) -> None:
    reader, writer = History(path), History(path)
    deploy = make_deploy(1)
    create(writer, deploy)
    assert [r.id for r in reader.records()] == [deploy.id]
    writer.append_events([note(deploy.id)])
    assert len(reader.record(deploy.id).events) == 2


def test_non_canonical_but_valid_file_is_accepted(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    path.write_text(json.dumps(file_json(path), indent=2))  # e.g. pretty-printed by a user
    assert [r.id for r in History(path).records()] == [deploy.id]
    history.append_events([note(deploy.id)])
    assert len(history.record(deploy.id).events) == 2


async def test_async_history_runs_off_the_loop_thread(path: Path) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    class Spy(History):
        def records(self, repo: str | None = None, environment: str | None = None):  # type: ignore[override]
            threads.append(threading.get_ident())
            return super().records(repo, environment)

    history = AsyncHistory(Spy(path, lock_timeout=5))
    deploy = make_deploy(1)
    await history.create_deploy(deploy, [created(deploy)])
    assert [r.id for r in await history.records()] == [deploy.id]
    assert threads and loop_thread not in threads
    # While another process holds the lock the append waits in its thread; the loop keeps running.
    holder = FileLock(str(path) + ".lock")
    holder.acquire()
    task = asyncio.create_task(history.append_events([note(deploy.id)]))
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert not task.done()
    holder.release()
    (event,) = await asyncio.wait_for(task, 5)
    assert event.seq == 2
    assert (await history.record(deploy.id)).events[-1] == event
    assert await history.environments() == [(REPO, "production")]
    assert await history.find_by_run(REPO, 5) is None
    assert (await history.apply([], [])).records == ()


def test_default_path_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    path = default_history_path()
    assert path.parts[-2:] == ("vmkit", "history.json")
    assert not (tmp_path / "xdg").exists()


def test_keep_must_be_positive(path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        History(path, keep=0)


def test_only_the_history_modules_open_tinydb() -> None:
    """Every process must use the same storage: a stock JSONStorage writer loses data once
    another process has replaced the file (it keeps writing to the old inode)."""
    package = Path(history_module.__file__).parents[1]  # all of vmkit_tui/store
    offenders = [
        str(source.relative_to(package))
        for source in package.rglob("*.py")
        if source.relative_to(package).as_posix()
        not in ("history/history.py", "history/storage.py")
        and re.search(r"^\s*(from|import)\s+tinydb", source.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


def test_history_holds_no_open_file_between_calls(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    history.records()
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.exists():
        pytest.skip("needs /proc")
    open_paths = {os.path.realpath(fd_dir / fd) for fd in os.listdir(fd_dir)}
    assert str(path.resolve()) not in open_paths


def test_mutating_a_returned_record_never_reaches_the_file(history: History, path: Path) -> None:
    deploy = make_deploy(1)
    create(history, deploy)
    (event,) = history.record(deploy.id).events
    event.data["title"] = "rewritten"  # type: ignore[index]  # a careless caller
    history.append_events([note(deploy.id)])
    stored = [e for e in file_json(path)["events"].values() if e["kind"] == "created"]
    assert stored[0]["data"] == {"title": "Fix checkout"}
