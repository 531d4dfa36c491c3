"""A local deploy record ↔ a GitHub Deployment and its statuses (pure).

GitHub Deployments are the record a team shares; the history file stays the fast local copy.
What goes up: every deploy an action of ours starts becomes a deployment (payload naming the
vmkit deploy id, rollback_of, trigger, actor, request id and strategy) and its facts become
statuses in order: status changes, the run link, cancel requests, notes and the diagnosis. A
status's state is always the deploy's true state at that moment; what the fact was is in the
description (≤ 140 characters, readable on GitHub's Environments page).

The outbox is the history itself: a SHARED note (`shared_note`) records how far a deploy's
facts were written and which GitHub statuses that produced, so the writes left (`unshared`)
are derived after a crash, a restart or GitHub being down, retried in order, and never sent
twice. No document changes shape (a NOTE with a data key), so no history migration is needed.

What comes down (`import_events`): another machine's statuses become the same events, with the
same deterministic ids for status changes, the run link and the diagnosis, and ids derived
from the GitHub status id for the rest, so importing twice, or on two machines, agrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmkit_tui.domain.event_ids import (
    diagnosis_event_id,
    imported_note_id,
    run_link_id,
    shared_note_id,
    status_event_id,
)
from vmkit_tui.domain.models import (
    DEPLOY_ID_PATTERN,
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    ValidationError,
    from_iso,
    to_iso,
)

__all__ = [
    "DESCRIPTION_LIMIT",
    "PAYLOAD_KEY",
    "Claim",
    "RemoteStatus",
    "StatusWrite",
    "deployment_description",
    "deployment_payload",
    "deployment_task",
    "import_deploy",
    "import_events",
    "is_imported",
    "mirrors",
    "needs_sharing",
    "older_claim",
    "run_id_of",
    "shared_deployment_id",
    "shared_note",
    "superseded_description",
    "unshared",
]

PAYLOAD_KEY = "vmkit_deploy_id"
DESCRIPTION_LIMIT = 140
TASK_DEPLOY, TASK_ROLLBACK = "deploy", "deploy:rollback"
_STATE_OF = {
    Status.PENDING: "queued",
    Status.RUNNING: "in_progress",
    Status.CANCELLING: "in_progress",
    Status.SUCCEEDED: "success",
    Status.FAILED: "failure",
    Status.CANCELLED: "error",
}
_WORD = {
    Status.PENDING: "Queued",
    Status.RUNNING: "Running",
    Status.SUCCEEDED: "Succeeded",
    Status.FAILED: "Failed",
    Status.CANCELLED: "Cancelled",
}
_STATUS_OF_WORD = {word: status for status, word in _WORD.items()}
_CANCEL, _NOTE, _DIAGNOSIS, _RUN = "Cancel requested", "Note", "Diagnosis", "Run"
# Data keys of events that are bookkeeping or came from GitHub: never written back.
_BOOKKEEPING = ("shared", "github_status", "linked_deployment")
FINAL_STATES = frozenset({"success", "failure", "error", "inactive"})


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """One deployment status to append for a local event (`event_seq` orders the outbox)."""

    event_seq: int
    state: str
    description: str
    log_url: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """A deployment status as GitHub lists it (the client parses into this type)."""

    id: int
    state: str
    description: str
    log_url: str | None
    creator: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """A vmkit deployment on an environment and whether it is still in flight there."""

    deployment_id: int
    deploy_id: str
    actor: str
    description: str
    created_at: datetime
    unfinished: bool


def _created(record: DeployRecord) -> Mapping[str, Any]:
    for event in record.events:
        if event.kind is EventKind.CREATED:
            return event.data
    return {}


def is_imported(record: DeployRecord) -> bool:
    """Recorded from another machine's deployment (its statuses are theirs to write)."""
    return isinstance(_created(record).get("deployment_id"), int)


def mirrors(record: DeployRecord) -> bool:
    """Whether this machine writes the deploy's deployment: it started it (an action here)."""
    return "action" in _created(record) and not is_imported(record)


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DESCRIPTION_LIMIT else line[: DESCRIPTION_LIMIT - 1] + "…"


def deployment_task(record: DeployRecord) -> str:
    return TASK_ROLLBACK if _created(record).get("action") == "rollback" else TASK_DEPLOY


def deployment_description(record: DeployRecord) -> str:
    """What people read on GitHub: the action's title and who started it from where."""
    deploy = record.deploy
    title = str(_created(record).get("title") or f"Deploy {deploy.short_sha}")
    return _clip(f"{title} ({deploy.triggered_by.value}, {deploy.actor or 'unknown'})")


def deployment_payload(record: DeployRecord) -> dict[str, Any]:
    deploy, created = record.deploy, _created(record)
    return {
        PAYLOAD_KEY: deploy.id,
        "rollback_of": deploy.rollback_of,
        "triggered_by": deploy.triggered_by.value,
        "actor": deploy.actor,
        "request_id": created.get("request_id"),
        "strategy": created.get("strategy"),
        "action": created.get("action"),
        "title": str(created.get("title", ""))[:200],
        "created_at": to_iso(deploy.created_at),
    }


def superseded_description(deployment_id: int, actor: str) -> str:
    return _clip(f"superseded by #{deployment_id} of {actor or 'someone'}")


def _writes(record: DeployRecord) -> list[tuple[DeployEvent, StatusWrite]]:
    """Every local fact of the deploy as a status, in order, each with the true state then."""
    found: list[tuple[DeployEvent, StatusWrite]] = []
    status, cancel = Status.PENDING, False
    for event in record.events:
        if any(key in event.data for key in _BOOKKEEPING):
            continue  # our own bookkeeping, or a fact another machine already wrote
        if event.kind is EventKind.STATUS and event.status is not None:
            if status.is_final:
                continue
            status = event.status
            text = f"{_WORD.get(status, status.value)}: {event.detail}"
        elif event.kind is EventKind.RUN_LINKED:
            text = f"{_RUN}: {event.detail}"
        elif event.kind is EventKind.CANCEL_REQUESTED:
            cancel = True
            text = f"{_CANCEL}: {event.detail}"
        elif event.kind is EventKind.NOTE and event.detail:
            text = f"{_NOTE}: {event.detail}"
        elif event.kind is EventKind.DIAGNOSIS:
            text = f"{_DIAGNOSIS}: {event.detail}"
        else:
            continue
        state = _STATE_OF[Status.CANCELLING if cancel and status.is_active else status]
        found.append((event, StatusWrite(event.seq, state, _clip(text), record.run_url)))
    return found


def shared_deployment_id(record: DeployRecord) -> int | None:
    """The GitHub deployment this record is (imported) or was written as (ours)."""
    value = _created(record).get("deployment_id")
    if isinstance(value, int):
        return value
    for event in record.events:
        shared = event.data.get("shared")
        if isinstance(shared, Mapping) and isinstance(shared.get("deployment_id"), int):
            return int(shared["deployment_id"])
    return None


def _shared_through(record: DeployRecord) -> int:
    through = 0
    for event in record.events:
        shared = event.data.get("shared")
        if isinstance(shared, Mapping):
            through = max(through, int(shared.get("through_seq", 0)))
    return through


def _written_status_ids(record: DeployRecord) -> set[int]:
    ids: set[int] = set()
    for event in record.events:
        shared = event.data.get("shared")
        if isinstance(shared, Mapping):
            ids.update(i for i in shared.get("status_ids", ()) if isinstance(i, int))
        if isinstance(event.data.get("github_status"), int):
            ids.add(int(event.data["github_status"]))
    return ids


def unshared(record: DeployRecord) -> list[StatusWrite]:
    """The statuses still to write for a deploy this machine mirrors, oldest first (empty when
    it is all on GitHub). A deploy never written at all also still needs its deployment:
    `shared_deployment_id` is None then. Another machine's deploy: only our cancel requests
    and notes on it."""
    ours = mirrors(record)
    if not ours and not is_imported(record):
        return []  # a push deploy: nothing to write (asked for every row the table draws)
    through = _shared_through(record)
    writes = [w for e, w in _writes(record) if e.seq > through]
    if ours:
        return writes
    kinds = {e.seq: e.kind for e in record.events}
    return [w for w in writes if kinds[w.event_seq] in (EventKind.CANCEL_REQUESTED, EventKind.NOTE)]


def needs_sharing(record: DeployRecord) -> bool:
    """Not yet (fully) on GitHub: the UI marks it, the outbox holds its writes."""
    if mirrors(record) and shared_deployment_id(record) is None:
        return True
    return bool(unshared(record))


def shared_note(
    record: DeployRecord,
    at: datetime,
    deployment_id: int,
    through_seq: int,
    status_ids: Sequence[int],
) -> NewEvent:
    """What the outbox records after writing: how far, as which deployment and statuses."""
    return NewEvent(
        record.id,
        EventKind.NOTE,
        at,
        detail=f"Shared on GitHub as deployment #{deployment_id}.",
        data={
            "shared": {
                "deployment_id": deployment_id,
                "through_seq": through_seq,
                "status_ids": list(status_ids),
            }
        },
        event_id=shared_note_id(record.id, through_seq),
    )


def import_deploy(
    repo: str,
    environment: str,
    deployment_id: int,
    sha: str,
    payload: Mapping[str, Any],
    creator: str | None,
    created_at: datetime,
) -> tuple[Deploy, NewEvent] | None:
    """The deploy another vmkit-tui recorded, from its deployment (None: not one of ours,
    or a payload that does not hold together)."""
    deploy_id = payload.get(PAYLOAD_KEY)
    if not isinstance(deploy_id, str) or not DEPLOY_ID_PATTERN.fullmatch(deploy_id):
        return None
    try:
        when = payload.get("created_at")
        rollback_of = payload.get("rollback_of")
        deploy = Deploy(
            id=deploy_id,
            repo=repo,
            environment=environment,
            sha=sha,
            triggered_by=Trigger(str(payload.get("triggered_by", "manual"))),
            actor=str(payload.get("actor") or creator or "")[:100],
            created_at=from_iso(when) if isinstance(when, str) else created_at,
            rollback_of=rollback_of if isinstance(rollback_of, str) else None,
        )
    except (ValueError, ValidationError):
        return None
    data: dict[str, Any] = {"deployment_id": deployment_id}
    for key in ("action", "strategy", "request_id", "title"):
        if isinstance(payload.get(key), str):
            data[key] = payload[key][:500]
    title = str(data.get("title", f"Deploy {deploy.short_sha}"))
    return deploy, NewEvent(
        deploy_id, EventKind.CREATED, deploy.created_at, detail=title, data=data
    )


def import_events(record: DeployRecord, statuses: Iterable[RemoteStatus]) -> list[NewEvent]:
    """Statuses (oldest first) this machine did not write, as the events they stand for. Ids
    are deterministic, so a second import (or a fact this machine also saw) is a no-op."""
    mine = _written_status_ids(record)
    deploy_id = record.id
    events: list[NewEvent] = []
    for status in statuses:
        if status.id in mine:
            continue
        word, _, detail = status.description.partition(": ")
        data: dict[str, Any] = {"github_status": status.id}
        known = _STATUS_OF_WORD.get(word)
        if known is not None:
            events.append(
                NewEvent(
                    deploy_id,
                    EventKind.STATUS,
                    status.created_at,
                    status=known,
                    detail=detail,
                    data=data,
                    event_id=status_event_id(deploy_id, known),
                )
            )
            continue
        kind, event_id = EventKind.NOTE, imported_note_id(deploy_id, status.id)
        if word == _RUN:
            kind, event_id = EventKind.RUN_LINKED, run_link_id(deploy_id)
            data.update(_run_data(status.log_url))
        elif word == _CANCEL:
            kind = EventKind.CANCEL_REQUESTED
        elif word == _DIAGNOSIS:
            kind, event_id = EventKind.DIAGNOSIS, diagnosis_event_id(deploy_id)
            data.update({"cause": detail, "fix": "", "line": ""})
        elif word != _NOTE:
            detail = status.description  # a status someone wrote by hand: kept as a note
            if status.state == "inactive":
                detail = f"Inactive on GitHub: {detail}"
        events.append(
            NewEvent(
                deploy_id, kind, status.created_at, detail=detail, data=data, event_id=event_id
            )
        )
    return events


def run_id_of(log_url: str | None) -> int | None:
    """The GitHub run a status's log URL points at (`…/actions/runs/123…`), if any."""
    tail = (log_url or "").rstrip("/").rsplit("/runs/", 1)
    run = tail[1].split("/", 1)[0] if len(tail) == 2 else ""
    return int(run) if run.isdigit() else None


def _run_data(log_url: str | None) -> dict[str, Any]:
    if not log_url:
        return {}
    run_id = run_id_of(log_url)
    return {"run_url": log_url} if run_id is None else {"run_id": run_id, "run_url": log_url}


def older_claim(mine: int, claims: Iterable[Claim]) -> Claim | None:
    """The oldest unfinished claim older than ours (GitHub's ids increase), if any: it wins."""
    older = [c for c in claims if c.unfinished and c.deployment_id < mine]
    return min(older, key=lambda c: c.deployment_id) if older else None
