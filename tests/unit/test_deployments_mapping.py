"""The deploy record ↔ GitHub Deployment mapping (pure): what goes up, in order and with
truthful states; what the outbox still holds after a partial write; what comes down from
another machine, idempotently and without echoing our own statuses back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vmkit_tui.domain.deployments import (
    Claim,
    RemoteStatus,
    deployment_payload,
    deployment_task,
    import_deploy,
    import_events,
    mirrors,
    needs_sharing,
    older_claim,
    shared_deployment_id,
    shared_note,
    unshared,
)
from vmkit_tui.domain.event_ids import status_event_id
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 40


def record(
    *news: NewEvent, action: str | None = "rollback", data: dict | None = None
) -> DeployRecord:
    deploy = Deploy(
        "0123456789ab",
        "acme/app",
        "production",
        SHA,
        Trigger.MCP,
        "priya",
        T0,
        rollback_of="ba9876543210",
    )
    created_data = dict(data or {})
    if action:
        created_data |= {
            "action": action,
            "strategy": "github",
            "request_id": "vmkit-0123456789ab",
            "title": "Roll back production to aaaaaaa",
        }
    created = NewEvent(deploy.id, EventKind.CREATED, T0, data=created_data)
    events = [DeployEvent.from_new(new, seq) for seq, new in enumerate([created, *news], start=1)]
    return DeployRecord.build(deploy, events)


def status(s: Status, minute: int, detail: str = "x") -> NewEvent:
    at = T0 + timedelta(minutes=minute)
    return NewEvent(
        "0123456789ab",
        EventKind.STATUS,
        at,
        status=s,
        detail=detail,
        event_id=status_event_id("0123456789ab", s),
    )


def test_the_payload_names_what_only_we_know() -> None:
    rec = record(status(Status.RUNNING, 0))
    payload = deployment_payload(rec)
    assert payload["vmkit_deploy_id"] == "0123456789ab"
    assert payload["rollback_of"] == "ba9876543210"
    assert (payload["triggered_by"], payload["actor"]) == ("mcp", "priya")
    assert (payload["request_id"], payload["strategy"]) == ("vmkit-0123456789ab", "github")
    assert deployment_task(rec) == "deploy:rollback"
    assert deployment_task(record(action="deploy")) == "deploy"


def test_statuses_go_up_in_order_with_truthful_states() -> None:
    cancel = NewEvent("0123456789ab", EventKind.CANCEL_REQUESTED, T0, detail="by sam (manual)")
    note = NewEvent("0123456789ab", EventKind.NOTE, T0, detail="To undo, roll back to bbbbbbb")
    rec = record(status(Status.RUNNING, 0), cancel, note, status(Status.CANCELLED, 2))
    writes = unshared(rec)
    assert [w.state for w in writes] == ["in_progress", "in_progress", "in_progress", "error"]
    assert writes[1].description.startswith("Cancel requested: by sam")
    assert writes[2].description.startswith("Note: To undo")
    assert [w.event_seq for w in writes] == sorted(w.event_seq for w in writes)
    assert all(len(w.description) <= 140 for w in writes)


def test_the_outbox_keeps_only_what_was_not_written() -> None:
    rec = record(status(Status.RUNNING, 0), status(Status.SUCCEEDED, 1))
    assert mirrors(rec) and needs_sharing(rec) and shared_deployment_id(rec) is None
    marker = shared_note(rec, T0, 41, through_seq=2, status_ids=[7])
    rec = DeployRecord.build(rec.deploy, [*rec.events, DeployEvent.from_new(marker, 4)])
    assert shared_deployment_id(rec) == 41
    assert [w.state for w in unshared(rec)] == ["success"]  # seq 3 is left
    done = shared_note(rec, T0, 41, through_seq=4, status_ids=[8])
    rec = DeployRecord.build(rec.deploy, [*rec.events, DeployEvent.from_new(done, 5)])
    assert unshared(rec) == [] and not needs_sharing(rec)


def test_a_push_deploy_found_by_tracking_is_not_mirrored() -> None:
    rec = record(status(Status.RUNNING, 0), action=None)
    assert not mirrors(rec) and unshared(rec) == [] and not needs_sharing(rec)


def remote(i: int, state: str, description: str, minute: int = 0) -> RemoteStatus:
    return RemoteStatus(i, state, description, None, "priya", T0 + timedelta(minutes=minute))


def test_another_machines_deploy_comes_down_as_the_same_record() -> None:
    payload = deployment_payload(record())
    imported = import_deploy("acme/app", "production", 41, SHA, payload, "bot", T0)
    assert imported is not None
    deploy, created = imported
    assert (deploy.id, deploy.actor, deploy.triggered_by) == ("0123456789ab", "priya", Trigger.MCP)
    assert deploy.rollback_of == "ba9876543210" and deploy.created_at == T0
    rec = DeployRecord.build(deploy, [DeployEvent.from_new(created, 1)])
    assert not mirrors(rec) and shared_deployment_id(rec) == 41
    events = import_events(
        rec,
        [
            remote(1, "in_progress", "Running: go"),
            remote(2, "in_progress", "Cancel requested: by sam"),
            remote(3, "error", "Cancelled: stopped", 1),
        ],
    )
    assert [e.kind for e in events] == [
        EventKind.STATUS,
        EventKind.CANCEL_REQUESTED,
        EventKind.STATUS,
    ]
    assert events[0].event_id == status_event_id(deploy.id, Status.RUNNING)  # as on the origin
    assert events[2].status is Status.CANCELLED
    again = import_events(rec, [remote(2, "in_progress", "Cancel requested: by sam")])
    assert again[0].event_id == events[1].event_id  # a second import is a no-op


def test_our_own_statuses_are_not_imported_back_and_imported_ones_not_sent_back() -> None:
    rec = record(status(Status.RUNNING, 0))
    marker = shared_note(rec, T0, 41, through_seq=2, status_ids=[5])
    rec = DeployRecord.build(rec.deploy, [*rec.events, DeployEvent.from_new(marker, 3)])
    assert import_events(rec, [remote(5, "in_progress", "Running: x")]) == []
    foreign = import_events(rec, [remote(6, "in_progress", "Note: from sam")])[0]
    rec = DeployRecord.build(rec.deploy, [*rec.events, DeployEvent.from_new(foreign, 4)])
    assert unshared(rec) == []


def test_a_payload_that_is_not_ours_is_not_a_deploy() -> None:
    assert import_deploy("acme/app", "production", 1, SHA, {}, None, T0) is None
    bad = {"vmkit_deploy_id": "../../etc", "triggered_by": "push"}
    assert import_deploy("acme/app", "production", 1, SHA, bad, None, T0) is None
    worse = {"vmkit_deploy_id": "0123456789ab", "triggered_by": "root"}
    assert import_deploy("acme/app", "production", 1, SHA, worse, None, T0) is None


def test_the_oldest_unfinished_older_claim_wins() -> None:
    claims = [
        Claim(10, "aaaaaaaaaaaa", "sam", "d", T0, unfinished=False),
        Claim(11, "bbbbbbbbbbbb", "lee", "d", T0, unfinished=True),
        Claim(12, "cccccccccccc", "kim", "d", T0, unfinished=True),
        Claim(14, "dddddddddddd", "max", "d", T0, unfinished=True),
    ]
    assert older_claim(13, claims) == claims[1]
    assert older_claim(11, claims) is None


def test_on_a_teammates_deploy_only_our_cancel_requests_and_notes_go_up() -> None:
    imported = import_deploy(
        "acme/app", "production", 41, SHA, deployment_payload(record()), "bot", T0
    )
    assert imported is not None
    deploy, created = imported
    seen = import_events(DeployRecord.build(deploy, []), [remote(1, "in_progress", "Running: x")])
    ours_too = status(Status.SUCCEEDED, 3)  # our tracker saw the run end: theirs to write
    cancel = NewEvent(deploy.id, EventKind.CANCEL_REQUESTED, T0, detail="by bob (manual)")
    news = [created, *seen, ours_too, cancel]
    rec = DeployRecord.build(deploy, [DeployEvent.from_new(n, i) for i, n in enumerate(news, 1)])
    writes = unshared(rec)
    assert [w.description for w in writes] == ["Cancel requested: by bob (manual)"]
    assert writes[0].state == "success"  # truthful: the deploy had already succeeded here
