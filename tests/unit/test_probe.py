"""The shared look at a workflow's runs stands in for a watcher's own list only when a change
to any of the watcher's runs would show on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from vmkit_tui.sources.github import WorkflowRun
from vmkit_tui.tracking.probe import PAGE, Look

AT = datetime(2026, 5, 1, tzinfo=UTC)
RUN = WorkflowRun(
    id=1, run_number=1, run_attempt=1, event="push", status="completed", conclusion="success",
    head_sha="a" * 40, head_branch="main", display_title="t", html_url="u", actor=None,
    created_at=AT, updated_at=AT, run_started_at=AT,
)  # fmt: skip


def look(ids: range, branch: str = "main") -> Look:
    """Runs one minute apart, newest first, as GitHub lists them."""
    runs = [
        replace(RUN, id=i, created_at=AT + timedelta(minutes=i), head_branch=branch) for i in ids
    ]
    return Look.of(AT + timedelta(days=1), tuple(reversed(runs)))


def test_a_full_page_covers_only_the_runs_on_it_and_what_came_after_its_oldest() -> None:
    full = look(range(1000, 1000 + PAGE))
    since = AT + timedelta(minutes=1000)  # the page's oldest run
    assert full.covers([1000, 1050], since) and full.covers([], since)
    assert not full.covers([1000, 999], since)  # an older run of ours is off the page: list it
    # a run of ours created after an earlier `since` may have been pushed off the page
    assert not full.covers([], since - timedelta(seconds=1))


def test_a_page_that_is_not_full_holds_the_whole_workflow() -> None:
    assert look(range(10, 20)).covers([5, 999], AT)


def test_runs_are_grouped_by_branch() -> None:
    page = Look.of(AT, (*look(range(3, 5), "staging").runs, *look(range(1, 3)).runs))
    assert [run.id for run in page.on("main")] == [2, 1]
    assert [run.id for run in page.on("staging")] == [4, 3] and page.on("other") == ()
