"""Plain-text and JSON views of deploy records, shared by the CLI and the MCP server.

The JSON shape is a documented, stable contract (README "History file and --json"): add keys,
never rename or remove them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from vmkit_tui.models import DeployRecord, to_iso
from vmkit_tui.text import plain


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment else None


def record_json(record: DeployRecord) -> dict[str, Any]:
    deploy = record.deploy
    duration = record.duration
    diagnosis = record.diagnosis
    return {
        "id": deploy.id,
        "repo": deploy.repo,
        "environment": deploy.environment,
        "sha": deploy.sha,
        "status": record.status.value,
        "triggered_by": deploy.triggered_by.value,
        "actor": deploy.actor,
        "run_id": record.run_id,
        "run_url": record.run_url,
        "rollback_of": deploy.rollback_of,
        "created_at": to_iso(deploy.created_at),
        "started_at": _iso(record.started_at),
        "first_healthy_at": _iso(record.first_healthy_at),
        "finished_at": _iso(record.finished_at),
        "duration_seconds": duration[0].total_seconds() if duration else None,
        "duration_basis": duration[1].value if duration else None,
        "cancel_requested": record.cancel_requested,
        "diagnosis": diagnosis.to_data() if diagnosis else None,
    }


def history_table(records: Iterable[DeployRecord]) -> Iterator[str]:
    """Deploys grouped per repo and environment, newest first, one line each."""
    ordered = sorted(records, key=lambda r: (r.deploy.repo, r.deploy.environment))
    any_rows = False
    for (repo, environment), group in groupby(
        ordered, key=lambda r: (r.deploy.repo, r.deploy.environment)
    ):
        any_rows = True
        rows = sorted(
            group,
            key=lambda r: (r.deploy.created_at, r.events[-1].seq if r.events else 0),
            reverse=True,
        )
        yield f"{repo} / {environment} ({len(rows)} deploys)"
        for record in rows:
            yield "  " + _row(record)
    if not any_rows:
        yield "no deploys recorded yet"


def _row(record: DeployRecord) -> str:
    deploy = record.deploy
    duration = record.duration
    parts = [
        deploy.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        f"{record.status.value:<10}",
        deploy.short_sha,
        f"{deploy.triggered_by.value:<6}",
        plain(deploy.actor),
        format_duration(duration[0]) if duration else "-",
    ]
    if deploy.rollback_of:
        parts.append(f"rollback of {deploy.rollback_of}")
    return "  ".join(parts)
