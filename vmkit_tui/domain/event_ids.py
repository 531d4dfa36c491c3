"""Deterministic event ids: the one place they are spelled.

The history refuses a second event with an id it already holds, so an event built with one of
these ids is recorded once, however many processes (two TUIs, a TUI and the CLI) or retries
write the same fact. The strings are stored in existing history files: never change them.
"""

from __future__ import annotations

import hashlib

from vmkit_tui.domain.models import Status

__all__ = [
    "deployment_link_id",
    "diagnosis_event_id",
    "first_healthy_id",
    "imported_note_id",
    "log_marker_id",
    "rerun_deploy_id",
    "run_deploy_id",
    "run_gone_id",
    "run_link_id",
    "shared_note_id",
    "status_event_id",
    "undo_note_id",
]


def status_event_id(deploy_id: str, status: Status) -> str:
    """Deterministic id for 'deploy X reached status S': two watchers recording the same
    transition produce the same id, so the second append is a no-op."""
    return f"{deploy_id}:status:{status.value}"


def run_link_id(deploy_id: str) -> str:
    """The RUN_LINKED event tying a deploy to its GitHub run: one link per deploy, whether the
    action that dispatched it or tracking records it."""
    return f"{deploy_id}:run_linked"


def run_gone_id(deploy_id: str) -> str:
    """The NOTE saying GitHub no longer has the deploy's run (its job logs cannot be fetched):
    recorded once, so the run is not asked about again at every start."""
    return f"{deploy_id}:run_gone"


def undo_note_id(deploy_id: str) -> str:
    """The NOTE saying how to undo an action (roll back to what was live before it)."""
    return f"{deploy_id}:undo"


def log_marker_id(deploy_id: str, job_id: int) -> str:
    """Id of the NOTE event saying 'job <id>'s log is in this deploy's spool' (one per job)."""
    return f"{deploy_id}:joblog:{job_id}"


def diagnosis_event_id(deploy_id: str) -> str:
    """The one DIAGNOSIS event of a failed deploy."""
    return f"{deploy_id}:diagnosis"


def first_healthy_id(deploy_id: str) -> str:
    """The one FIRST_HEALTHY event of a deploy (two VM watchers never record it twice)."""
    return f"{deploy_id}:first_healthy"


def shared_note_id(deploy_id: str, through_seq: int) -> str:
    """The SHARED note saying the deploy's facts up to `through_seq` are on GitHub: one per
    write, so a write recorded twice (a retry, two processes flushing) is noted once."""
    return f"{deploy_id}:shared:{through_seq}"


def imported_note_id(deploy_id: str, status_id: int) -> str:
    """The event another machine's GitHub deployment status `status_id` stands for, when it is
    not a status change, run link or diagnosis (those keep their own ids): importing it twice,
    or on two machines, records it once."""
    return f"{deploy_id}:github:{status_id}"


def deployment_link_id(deploy_id: str, deployment_id: int) -> str:
    """The NOTE tying a deploy to the GitHub deployment GitHub Actions made for its run."""
    return f"{deploy_id}:deployment:{deployment_id}"


def rerun_deploy_id(repo: str, run_id: int, attempt: int) -> str:
    """The deploy id of a re-run (attempt > 1) of a GitHub run: every process that sees the
    attempt makes the same deploy, so the history records it once (a first attempt is recorded
    once per run by the history itself)."""
    return hashlib.sha256(f"{repo}:run:{run_id}:attempt:{attempt}".encode()).hexdigest()[:12]


def run_deploy_id(repo: str, run_id: int) -> str:
    """The deploy id of a GitHub run's first attempt: every machine that records the run makes
    the same id, so histories built apart (two laptops, or one rebuilt from GitHub) agree.
    Records made before this rule keep their random ids (the history dedups them by run id)."""
    return hashlib.sha256(f"{repo}:run:{run_id}".encode()).hexdigest()[:12]
