"""The shared look at a workflow's runs stands in for a watcher's own list only when a change
to any of the watcher's runs would show on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from vmkit_tui.sources.github import WorkflowRun
from vmkit_tui.tracking.probe import PAGE, Look

AT = datetime(2026, 5, 1, tzinfo=UTC)
RUN = WorkflowRun(
    id=1, run_number=1, run_attempt=1, event="push", status="completed", conclusion="success",
    head_sha="a" * 40, head_branch="main", display_title="t", html_url="u", actor=None,
    created_at=AT, updated_at=AT, run_started_at=AT,
)  # fmt: skip


def look(ids: range) -> Look:
    runs = tuple(replace(RUN, id=i) for i in ids)
    return Look(0, AT, runs, frozenset(ids))


def test_a_full_page_covers_only_the_runs_on_it() -> None:
    full = look(range(1000, 1000 + PAGE))
    assert full.covers([1000, 1050]) and full.covers([])
    assert not full.covers([1000, 999])  # an older run of ours is off the page: list it


def test_a_page_that_is_not_full_holds_the_whole_workflow() -> None:
    assert look(range(10, 20)).covers([5, 999])
