"""Deploy tracking's pure parts: runs → records and events, the shared rate budget, the
wall-clock-aware wait, and the job-log / diagnosis helpers (on a real spool in tmp_path)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vmkit_tui.domain.event_ids import log_marker_id, status_event_id
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    Status,
    Trigger,
)
from vmkit_tui.sources.github import Job, RateLimit, Step, WorkflowRun
from vmkit_tui.sources.github.job_log import parse_job_log
from vmkit_tui.store.spool import LogRecord, SpoolWriter
from vmkit_tui.tracking.job_logs import (
    TRUNCATED_NOTE,
    append_job_logs,
    diagnose_spool,
    job_log_records,
    logged_jobs,
)
from vmkit_tui.tracking.polling import RateBudget, TrackingTiming, wait_wall
from vmkit_tui.tracking.runs import link_event, new_deploy, request_id_of, status_events

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 40
OTHER = "b" * 40


def run(**changes: Any) -> WorkflowRun:
    fields: dict[str, Any] = {
        "id": 42,
        "run_number": 7,
        "run_attempt": 1,
        "event": "push",
        "status": "completed",
        "conclusion": "success",
        "head_sha": SHA,
        "head_branch": "main",
        "display_title": "Fix the thing\n\nlong body",
        "html_url": "https://github.com/acme/app/actions/runs/42",
        "actor": "maria-chen",
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=200),
        "run_started_at": T0 + timedelta(seconds=5),
    }
    fields.update(changes)
    return WorkflowRun(**fields)


# ---------------------------------------------------------------- runs → records


def test_request_id_is_read_from_dispatched_titles_only() -> None:
    title = f"Roll back production to {SHA[:7]} [req-0123456789]"
    assert request_id_of(run(event="workflow_dispatch", display_title=title)) == "req-0123456789"
    assert request_id_of(run(event="push", display_title=title)) is None
    assert request_id_of(run(event="workflow_dispatch", display_title="Deploy [short]")) is None


def test_a_push_run_becomes_a_push_deploy_with_its_title_and_link() -> None:
    deploy, created = new_deploy(run(), "acme/app", "production")
    assert deploy.sha == SHA and deploy.triggered_by is Trigger.PUSH
    assert (deploy.actor, deploy.run_id, deploy.created_at) == ("maria-chen", 42, T0)
    assert deploy.run_url == "https://github.com/acme/app/actions/runs/42"
    assert created.kind is EventKind.CREATED and created.deploy_id == deploy.id
    assert created.data == {"title": "Fix the thing", "event": "push", "branch": "main"}


def test_a_dispatch_nobody_recorded_is_manual_at_the_sha_its_title_names() -> None:
    named = run(event="workflow_dispatch", display_title=f"Roll back to {OTHER}", actor=None)
    deploy, _ = new_deploy(named, "acme/app", "staging")
    assert deploy.triggered_by is Trigger.MANUAL and deploy.sha == OTHER and deploy.actor == ""
    short = run(event="workflow_dispatch", display_title=f"Roll back to {OTHER[:7]}")
    assert new_deploy(short, "acme/app", "staging")[0].sha == SHA  # the head stands in


def test_status_events_follow_the_run_at_githubs_times_with_deterministic_ids() -> None:
    queued = run(status="queued", conclusion=None)
    [pending] = status_events("d1", queued, ())
    assert (pending.status, pending.at) == (Status.PENDING, T0)
    assert status_events("d1", queued, {Status.PENDING}) == []
    [running] = status_events("d1", run(status="in_progress", conclusion=None), {Status.PENDING})
    assert (running.status, running.at) == (Status.RUNNING, T0 + timedelta(seconds=5))
    assert running.event_id == status_event_id("d1", Status.RUNNING)
    seen_done = status_events("d1", run(), ())  # first seen finished: its start is recorded too
    assert [(e.status, e.at) for e in seen_done] == [
        (Status.RUNNING, T0 + timedelta(seconds=5)),
        (Status.SUCCEEDED, T0 + timedelta(seconds=200)),
    ]
    assert [e.status for e in status_events("d1", run(), {Status.RUNNING})] == [Status.SUCCEEDED]
    assert status_events("d1", run(), {Status.RUNNING, Status.SUCCEEDED}) == []
    for conclusion in ("failure", "timed_out", "startup_failure"):
        assert status_events("d1", run(conclusion=conclusion), {Status.RUNNING})[0].status is (
            Status.FAILED
        )
    cancelled = status_events("d1", run(conclusion="cancelled"), {Status.PENDING})
    assert [e.status for e in cancelled] == [Status.CANCELLED]  # maybe it never started


def test_a_link_event_carries_the_run_and_is_the_same_from_every_watcher() -> None:
    event = link_event("d1", run())
    assert event.kind is EventKind.RUN_LINKED and event.event_id == "d1:run_linked"
    assert event.data == {"run_id": 42, "run_url": "https://github.com/acme/app/actions/runs/42"}
    assert link_event("d1", run()).event_id == event.event_id


# ---------------------------------------------------------------- the rate budget


def limit(remaining: int, reset_in: float, total: int = 5000) -> RateLimit:
    return RateLimit(total, remaining, total - remaining, T0 + timedelta(seconds=reset_in))


def test_the_budget_leaves_intervals_alone_until_it_runs_low_then_stretches_them() -> None:
    budget = RateBudget(watchers=20)
    assert budget.interval(3.0, 2, None, T0) == 3.0  # no headers (GHES without limits)
    assert budget.interval(3.0, 2, limit(4000, 1800), T0) == 3.0  # plenty: 304s are free
    assert budget.interval(3.0, 2, limit(500, -5), T0) == 3.0  # the window already reset
    # 600 left, 100 reserved: 20 watchers × 2 requests must fit 500 in 1800 s → 144 s apiece
    assert budget.interval(3.0, 2, limit(600, 1800), T0) == pytest.approx(144.0)
    assert budget.interval(15.0, 1, limit(80, 900), T0) == 900.0  # nothing spare: the reset


# ---------------------------------------------------------------- waiting


class FakeTime:
    """A wall clock that moves with the sleeps, plus an optional jump (the machine slept)."""

    def __init__(self, jump_after: int | None = None, jump: float = 3600.0) -> None:
        self.wall = T0
        self.sleeps: list[float] = []
        self.jump_after = jump_after
        self.jump = jump

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += timedelta(seconds=seconds)
        if len(self.sleeps) == self.jump_after:
            self.wall += timedelta(seconds=self.jump)
        await asyncio.sleep(0)


def test_a_shared_look_is_never_as_old_as_the_shortest_idle_interval() -> None:
    """An idle watcher counts its next poll from the look's time: a look allowed to be older
    than its interval would make it poll again at once, and again, until the look expires."""
    timing = TrackingTiming()
    assert 0 < timing.probe_age < timing.idle * (1 - timing.jitter)


async def test_a_wait_sleeps_in_ticks_and_ends_at_once_after_a_wall_clock_jump() -> None:
    steady = FakeTime()
    await wait_wall(12.0, sleep=steady.sleep, now=steady.now, tick=5.0, wake=asyncio.Event())
    assert steady.sleeps == [5.0, 5.0, 2.0]
    slept = FakeTime(jump_after=1)
    await wait_wall(60.0, sleep=slept.sleep, now=slept.now, tick=5.0, wake=asyncio.Event())
    assert slept.sleeps == [5.0]  # the wall clock says the poll is overdue: poll now


async def test_a_wake_ends_the_wait_and_is_cleared() -> None:
    wake = asyncio.Event()
    started = asyncio.Event()

    async def long_sleep(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()  # never ends by itself

    waiting = asyncio.create_task(
        wait_wall(600.0, sleep=long_sleep, now=lambda: T0, tick=300.0, wake=wake)
    )
    await asyncio.wait_for(started.wait(), 5)
    wake.set()
    await asyncio.wait_for(waiting, 5)
    assert not wake.is_set()


# ---------------------------------------------------------------- job logs and diagnosis

FAILED_LOG = (
    "\ufeff2026-05-01T12:00:01.1234567Z ##[group]Run kamal deploy\n"
    "2026-05-01T12:00:01.2000000Z kamal deploy --version abc\n"
    "2026-05-01T12:00:01.3000000Z ##[endgroup]\n"
    "2026-05-01T12:00:02.0000000Z   ERROR (Net::SSH::ConnectionTimeout): Exception while "
    "executing on host 203.0.113.10: Net::SSH::ConnectionTimeout\n"
    "a continuation line without a time\n"
    "2026-05-01T12:00:03.0000000Z ##[error]Process completed with exit code 1.\n"
)


def job(job_id: int = 7, name: str = "deploy") -> Job:
    step = Step("Deploy with Kamal", 1, "completed", "failure", T0, T0)
    return Job(job_id, 42, name, "completed", "failure", T0, T0, None, (step,))


def test_job_log_records_keep_each_lines_time_and_mark_a_truncated_head() -> None:
    log = parse_job_log(FAILED_LOG)
    records = job_log_records(job(), log, T0)
    assert [(r.host, r.source) for r in records] == [("deploy", "github")] * len(log.lines)
    assert records[0].at == datetime(2026, 5, 1, 12, 0, 1, 123456, tzinfo=UTC)
    assert records[4].text == "a continuation line without a time"
    assert records[4].at == records[3].at  # inherits the previous line's time
    cut = job_log_records(job(), parse_job_log(FAILED_LOG, truncated=True), T0)
    assert cut[0].text == TRUNCATED_NOTE and cut[1:] == records


def record_with(events: list[DeployEvent]) -> DeployRecord:
    deploy = Deploy("0123456789ab", "acme/app", "production", SHA, Trigger.PUSH, "m", T0, 42)
    return DeployRecord.build(deploy, events)


def note(event_id: str, data: dict[str, Any], seq: int) -> DeployEvent:
    return DeployEvent(event_id, "0123456789ab", seq, T0, EventKind.NOTE, None, "", data)


def test_logged_jobs_are_the_marker_notes_only() -> None:
    record = record_with(
        [
            note(log_marker_id("0123456789ab", 7), {"job_id": 7}, 1),
            note("someone-else", {"job_id": 8}, 2),
            note(log_marker_id("0123456789ab", 9), {"job_id": "9"}, 3),
        ]
    )
    assert logged_jobs(record) == {7}


def test_the_diagnosis_points_at_its_spool_line_among_vm_lines(tmp_path: Path) -> None:
    with SpoolWriter.for_deploy(tmp_path, "0123456789ab") as writer:
        writer.append_many([LogRecord(T0, "vm-1", "vmkit-agent", "agent: waiting")] * 3)
    records = job_log_records(job(), parse_job_log(FAILED_LOG), T0)
    assert append_job_logs(tmp_path, "0123456789ab", records) == len(records)
    found = diagnose_spool(tmp_path, "0123456789ab")
    assert found is not None
    assert found.cause.startswith("Kamal could not connect to the VM over SSH")
    assert found.line_number == 3 + 3  # three VM lines, then the job log's fourth line
    assert found.source == "github" and "ConnectionTimeout" in found.line
    assert diagnose_spool(tmp_path, "ffffffffffff") is None  # no spool: nothing to say
