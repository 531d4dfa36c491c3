"""Deterministic event ids: the same fact always gets the same id (so a retried or concurrent
write is recorded once), different facts never share one, and the strings stay those already
stored in history files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vmkit_tui.domain.event_ids import (
    deployment_link_id,
    diagnosis_event_id,
    first_healthy_id,
    imported_note_id,
    log_marker_id,
    rerun_deploy_id,
    run_deploy_id,
    run_gone_id,
    run_link_id,
    shared_note_id,
    status_event_id,
    undo_note_id,
)
from vmkit_tui.domain.models import Status

DEPLOY = "a1b2c3d4e5f6"
OTHER = "0f9e8d7c6b5a"

KINDS: dict[str, Callable[[str], str]] = {
    "status running": lambda deploy_id: status_event_id(deploy_id, Status.RUNNING),
    "status succeeded": lambda deploy_id: status_event_id(deploy_id, Status.SUCCEEDED),
    "run link": run_link_id,
    "undo note": undo_note_id,
    "job 7 log": lambda deploy_id: log_marker_id(deploy_id, 7),
    "job 8 log": lambda deploy_id: log_marker_id(deploy_id, 8),
    "diagnosis": diagnosis_event_id,
    "first healthy": first_healthy_id,
    "run gone": run_gone_id,
    "shared through 5": lambda deploy_id: shared_note_id(deploy_id, 5),
    "shared through 6": lambda deploy_id: shared_note_id(deploy_id, 6),
    "imported status 5": lambda deploy_id: imported_note_id(deploy_id, 5),
    "deployment 5 link": lambda deploy_id: deployment_link_id(deploy_id, 5),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_id_is_the_same_for_the_same_fact(kind: str) -> None:
    build = KINDS[kind]
    assert build(DEPLOY) == build(DEPLOY)
    assert build(DEPLOY).startswith(f"{DEPLOY}:")


def test_ids_differ_across_kinds_and_across_deploys() -> None:
    ids = [build(deploy_id) for build in KINDS.values() for deploy_id in (DEPLOY, OTHER)]
    assert len(set(ids)) == len(ids)


def test_every_status_has_its_own_id() -> None:
    ids = {status_event_id(DEPLOY, status) for status in Status}
    assert len(ids) == len(Status)


def test_the_ids_are_those_existing_histories_hold() -> None:
    assert status_event_id(DEPLOY, Status.RUNNING) == f"{DEPLOY}:status:running"
    assert run_link_id(DEPLOY) == f"{DEPLOY}:run_linked"
    assert undo_note_id(DEPLOY) == f"{DEPLOY}:undo"
    assert log_marker_id(DEPLOY, 42) == f"{DEPLOY}:joblog:42"
    assert diagnosis_event_id(DEPLOY) == f"{DEPLOY}:diagnosis"
    assert first_healthy_id(DEPLOY) == f"{DEPLOY}:first_healthy"
    assert run_gone_id(DEPLOY) == f"{DEPLOY}:run_gone"
    assert shared_note_id(DEPLOY, 12) == f"{DEPLOY}:shared:12"
    assert imported_note_id(DEPLOY, 987654) == f"{DEPLOY}:github:987654"
    assert deployment_link_id(DEPLOY, 4321) == f"{DEPLOY}:deployment:4321"


def test_a_run_gives_the_same_deploy_id_everywhere_and_its_reruns_their_own() -> None:
    first = run_deploy_id("acme/app", 7)
    assert first == run_deploy_id("acme/app", 7)  # no randomness: every machine agrees
    assert len(first) == 12 and int(first, 16) >= 0
    others = {run_deploy_id("acme/app", 8), run_deploy_id("acme/other", 7)}
    others |= {rerun_deploy_id("acme/app", 7, attempt) for attempt in (2, 3)}
    assert first not in others and len(others) == 4
