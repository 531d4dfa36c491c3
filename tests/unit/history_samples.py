"""Small deploy/event factories shared by the history tests and their child processes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vmkit_tui.domain.models import Deploy, EventKind, NewEvent, Status, Trigger, new_deploy_id

REPO = "acme/storefront"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_deploy(
    n: int = 0,
    *,
    environment: str = "production",
    repo: str = REPO,
    run_id: int | None = None,
    deploy_id: str | None = None,
) -> Deploy:
    """Deploy number `n`: created `n` minutes after T0, SHA derived from `n`."""
    return Deploy(
        id=deploy_id or new_deploy_id(),
        repo=repo,
        environment=environment,
        sha=f"{n:040x}",
        triggered_by=Trigger.PUSH,
        actor="octocat",
        created_at=T0 + timedelta(minutes=n),
        run_id=run_id,
        run_url=f"https://github.com/{repo}/actions/runs/{run_id}" if run_id else None,
    )


def created(deploy: Deploy, title: str = "Fix checkout") -> NewEvent:
    return NewEvent(
        deploy_id=deploy.id,
        kind=EventKind.CREATED,
        at=deploy.created_at,
        detail="recorded",
        data={"title": title},
    )


def note(deploy_id: str, detail: str = "note", event_id: str = "", **data: Any) -> NewEvent:
    event = NewEvent(deploy_id=deploy_id, kind=EventKind.NOTE, at=T0, detail=detail, data=data)
    return replace(event, event_id=event_id) if event_id else event


def status(deploy_id: str, value: Status, event_id: str = "") -> NewEvent:
    event = NewEvent(deploy_id=deploy_id, kind=EventKind.STATUS, at=T0, status=value)
    return replace(event, event_id=event_id) if event_id else event
