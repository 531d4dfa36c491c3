"""GitHub's workflow runs → deploy records and events (pure).

Every run becomes a deploy (push runs `push`, dispatched runs `manual`); a run that an action
recorded before dispatching it (its CREATED event carries the `request_id` the run's title
shows) is linked to that record with one RUN_LINKED event instead. A re-run (`run_attempt` > 1)
is a deploy of its own, with a deterministic id, its CREATED event naming the attempt: it has
its own status, duration, jobs, logs and diagnosis, and its actor is who started that attempt
(GitHub's `triggering_actor`: `actor` stays who triggered the first); the earlier attempt's record
stays as it was. Status changes become STATUS events at GitHub's own times, with deterministic ids, so
two watchers (two TUIs, a TUI and the CLI) recording the same change write it once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime

from vmkit_tui.domain.event_ids import (
    rerun_deploy_id,
    run_deploy_id,
    run_link_id,
    status_event_id,
)
from vmkit_tui.domain.models import (
    Deploy,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
)
from vmkit_tui.domain.updates import StepProgress
from vmkit_tui.sources.github import Job, WorkflowRun

__all__ = [
    "TITLE_LIMIT",
    "RunKey",
    "attempt_started",
    "link_event",
    "new_deploy",
    "recorded_statuses",
    "request_id_of",
    "request_id_of_record",
    "status_events",
    "step_progress",
    "vmkit_deploy_of",
]

TITLE_LIMIT = 500  # characters of a run title kept in the history
RunKey = tuple[int, int]  # (run id, attempt): what one deploy record of a GitHub run stands for
# The request id the deploy workflow's run-name carries: "Roll back <env> to <sha7> [<id>]".
_REQUEST_ID = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_.-]{7,63})\]")
_VMKIT_REQUEST = re.compile(r"vmkit-([0-9a-f]{12})")  # actions/rollback.py's request ids
_FULL_SHA = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")


def request_id_of(run: WorkflowRun) -> str | None:
    """The request id a dispatched run's title carries, if any."""
    if run.event != "workflow_dispatch":
        return None
    match = _REQUEST_ID.search(run.display_title)
    return match.group(1) if match else None


def vmkit_deploy_of(run: WorkflowRun) -> str | None:
    """The deploy id a run dispatched by vmkit-tui carries in its request id, if any."""
    match = _VMKIT_REQUEST.fullmatch(request_id_of(run) or "")
    return match.group(1) if match else None


def _title(run: WorkflowRun) -> str:
    lines = run.display_title.splitlines()
    return lines[0][:TITLE_LIMIT] if lines else ""


def attempt_started(run: WorkflowRun) -> datetime:
    """When this attempt of the run began: a re-run keeps the run's `created_at` and gets a new
    `run_started_at`."""
    if run.run_attempt == 1:
        return run.created_at
    return run.run_started_at or run.updated_at


def new_deploy(
    run: WorkflowRun, repo: str, environment: str, earlier: Deploy | None = None
) -> tuple[Deploy, NewEvent]:
    """A deploy record for a run (attempt) nobody recorded, and its CREATED event.

    A dispatched run deploys its `sha` input, which the runs API does not return: a full SHA in
    the title is taken as that input, else the run's head SHA stands in. A re-run deploys what
    its `earlier` attempt did, when that is recorded."""
    dispatched = run.event == "workflow_dispatch"
    sha = run.head_sha
    if dispatched and (match := _FULL_SHA.search(run.display_title)):
        sha = match.group()
    rerun = run.run_attempt > 1
    at = attempt_started(run)
    deploy_id = (
        rerun_deploy_id(repo, run.id, run.run_attempt) if rerun else run_deploy_id(repo, run.id)
    )
    # A run another vmkit-tui dispatched names its deploy: the same record on every machine.
    requested = vmkit_deploy_of(run)
    if requested and not rerun:
        deploy_id = requested
    deploy = Deploy(
        id=deploy_id,
        repo=repo,
        environment=environment,
        sha=earlier.sha if rerun and earlier else sha,
        triggered_by=Trigger.MANUAL if dispatched else Trigger.PUSH,
        actor=run.triggering_actor or run.actor or "",  # a re-run: who re-ran it
        created_at=at,
        run_id=run.id,
        run_url=run.html_url,
        rollback_of=earlier.rollback_of if rerun and earlier else None,
    )
    data: dict[str, str | int] = {"title": _title(run), "event": run.event}
    if run.head_branch is not None:
        data["branch"] = run.head_branch
    if rerun:
        data["run_attempt"] = run.run_attempt
    created = NewEvent(deploy.id, EventKind.CREATED, at, data=data)
    return deploy, created


def link_event(deploy_id: str, run: WorkflowRun) -> NewEvent:
    """Ties a deploy the service recorded before dispatching to the run that carries it out."""
    return NewEvent(
        deploy_id,
        EventKind.RUN_LINKED,
        run.created_at,
        detail=f"GitHub run {run.id}",
        data={"run_id": run.id, "run_url": run.html_url},
        event_id=run_link_id(deploy_id),
    )


def status_events(deploy_id: str, run: WorkflowRun, recorded: Collection[Status]) -> list[NewEvent]:
    """The STATUS events that bring a deploy up to its run's state, at GitHub's own times.

    A run seen only once it has finished gets its 'running' too (from `run_started_at`), so its
    duration is known; a cancelled one does not (it may never have started)."""
    target = run.deploy_status
    wanted: list[tuple[Status, datetime]] = []
    started = run.run_started_at or run.created_at
    if target is Status.PENDING:
        # vmkit-tui records its own dispatches as running from the start: a queued one of
        # those gets no PENDING here, so every machine's record has the same statuses.
        if not recorded and vmkit_deploy_of(run) is None:
            wanted.append((Status.PENDING, attempt_started(run)))
    elif target is Status.RUNNING:
        wanted.append((Status.RUNNING, started))
    else:
        if target is not Status.CANCELLED:
            wanted.append((Status.RUNNING, started))
        wanted.append((target, max(run.updated_at, started)))
    return [
        NewEvent(
            deploy_id,
            EventKind.STATUS,
            at,
            status=status,
            detail=f"GitHub run {run.id}"
            + (f" attempt {run.run_attempt}" if run.run_attempt > 1 else "")
            + f": {run.status}"
            + (f" ({run.conclusion})" if run.conclusion else ""),
            event_id=status_event_id(deploy_id, status),
        )
        for status, at in wanted
        if status not in recorded
    ]


def recorded_statuses(record: DeployRecord) -> set[Status]:
    return {e.status for e in record.events if e.kind is EventKind.STATUS and e.status is not None}


def request_id_of_record(record: DeployRecord) -> str | None:
    for event in record.events:
        if event.kind is EventKind.CREATED:
            value = event.data.get("request_id")
            return value if isinstance(value, str) else None
    return None


def step_progress(jobs: Iterable[Job]) -> tuple[StepProgress, ...]:
    return tuple(
        StepProgress(job.name, step.name, step.number, step.status, step.conclusion)
        for job in jobs
        for step in job.steps
    )
