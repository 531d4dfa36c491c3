"""The log side of deploy tracking: GitHub job logs into a deploy's spool, and its diagnosis.

Blocking helpers (file I/O, a scan of the whole spool): the tracker runs them in a worker
thread. Event ids are deterministic (`domain.event_ids`) so that two trackers (two TUIs, or a TUI
and the CLI) never record the same job log or the same diagnosis twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from vmkit_tui.domain.event_ids import log_marker_id, run_gone_id
from vmkit_tui.domain.models import DeployRecord, Diagnosis, EventKind, NewEvent
from vmkit_tui.sources.github import Job
from vmkit_tui.sources.github.job_log import JobLog
from vmkit_tui.store.spool import LogRecord, SpoolReader, SpoolWriter, spool_path
from vmkit_tui.tracking.diagnose import diagnose

__all__ = [
    "GITHUB_SOURCE",
    "append_job_logs",
    "diagnose_spool",
    "job_log_records",
    "logged_jobs",
    "run_gone_note",
    "wants_job_logs",
]

GITHUB_SOURCE = "github"
TRUNCATED_NOTE = "[vmkit-tui] the start of this job's log was over the size limit and is not shown"


def logged_jobs(record: DeployRecord) -> set[int]:
    """Jobs whose log a tracker has claimed for this deploy's spool (their marker events)."""
    found: set[int] = set()
    for event in record.events:
        if event.kind is EventKind.NOTE and isinstance(event.data.get("job_id"), int):
            job_id = event.data["job_id"]
            if event.event_id == log_marker_id(record.id, job_id):
                found.add(job_id)
    return found


def wants_job_logs(record: DeployRecord) -> bool:
    """A finished GitHub deploy none of whose job logs was fetched (the past of a first start),
    whose run GitHub still has (as far as we know)."""
    if not record.status.is_final or record.run_id is None or logged_jobs(record):
        return False
    gone = run_gone_id(record.id)
    return not any(event.event_id == gone for event in record.events)


def run_gone_note(record: DeployRecord, at: datetime) -> NewEvent:
    """The note that GitHub no longer has this deploy's run (deleted, or past its retention):
    no job log will ever come, and no one asks for it again."""
    return NewEvent(
        record.id,
        EventKind.NOTE,
        at,
        detail=f"GitHub no longer has run {record.run_id}: its job logs cannot be fetched",
        data={"run_gone": record.run_id},
        event_id=run_gone_id(record.id),
    )


def job_log_records(job: Job, log: JobLog, fallback: datetime) -> list[LogRecord]:
    """One spool record per log line, at the line's own time (`fallback` for a log whose first
    lines carry none), the job's name as the host and `github` as the source."""
    records: list[LogRecord] = []
    if log.truncated:
        first = next((line.timestamp for line in log.lines if line.timestamp), None)
        records.append(LogRecord(first or fallback, job.name, GITHUB_SOURCE, TRUNCATED_NOTE))
    for line in log.lines:
        records.append(LogRecord(line.timestamp or fallback, job.name, GITHUB_SOURCE, line.text))
    return records


def append_job_logs(data_dir: Path, deploy_id: str, records: Sequence[LogRecord]) -> int:
    """Append to the deploy's spool (blocking); returns how many lines were written."""
    with SpoolWriter.for_deploy(data_dir, deploy_id) as writer:
        return writer.append_many(records)


def diagnose_spool(data_dir: Path, deploy_id: str) -> Diagnosis | None:
    """Why the deploy failed, from every line of its spool (GitHub job logs and VM lines), with
    `line_number` the spool line index the log pane jumps to (blocking: reads the whole spool)."""
    with SpoolReader(spool_path(data_dir, deploy_id)) as reader:
        lines = list(reader)
    found = diagnose(lines, source=GITHUB_SOURCE)
    if found is None or found.line_number is None:
        return found
    index = found.line_number - 1  # diagnose numbers lines from 1
    return replace(found, line_number=index, source=lines[index].source or found.source)
