"""The domain model: SHA validation and the state derived from append-only events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.domain.event_ids import status_event_id
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    DurationBasis,
    EventKind,
    Status,
    Trigger,
    ValidationError,
    derive_status,
    from_iso,
    to_iso,
    validate_sha,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "bad",
    [
        SHA[:7],  # short
        SHA.upper(),  # upper case
        SHA + "\n",  # trailing newline: re.match('^…$') would accept it
        SHA[:39] + "g",  # non-hex
        SHA + "0",  # 41
        "٣" * 40,  # unicode digits
        "",
        None,
        int("1" * 40),
    ],
)
def test_sha_validation_rejects(bad: object) -> None:
    with pytest.raises(ValidationError):
        validate_sha(bad)


def test_sha_validation_accepts_full_lowercase() -> None:
    assert validate_sha(SHA) == SHA


def make_deploy(**overrides: object) -> Deploy:
    fields: dict[str, object] = dict(
        id="a1b2c3d4e5f6",
        repo="acme/storefront",
        environment="production",
        sha=SHA,
        triggered_by=Trigger.PUSH,
        actor="octocat",
        created_at=T0,
    )
    fields.update(overrides)
    return Deploy(**fields)  # type: ignore[arg-type]


def test_deploy_rejects_bad_parts() -> None:
    with pytest.raises(ValidationError):
        make_deploy(sha=SHA[:12])
    with pytest.raises(ValidationError):
        make_deploy(environment="prod; rm -rf /")
    with pytest.raises(ValidationError):
        make_deploy(repo="no-owner")
    with pytest.raises(ValidationError):
        make_deploy(created_at=datetime(2026, 1, 1))  # naive


def test_deploy_round_trips_through_its_document() -> None:
    deploy = make_deploy(
        run_id=42,
        run_url="https://github.com/acme/storefront/actions/runs/42",
        rollback_of="ffffffffffff",
    )
    assert Deploy.from_doc(deploy.to_doc()) == deploy
    assert deploy.to_doc()["created_at"] == "2026-11-27T12:00:00.000000Z"


def ev(
    seq: int, kind: EventKind, minutes: float, status: Status | None = None, **data: object
) -> DeployEvent:
    return DeployEvent(
        f"e{seq}", "a1b2c3d4e5f6", seq, T0 + timedelta(minutes=minutes), kind, status, "", data
    )


def test_status_is_derived_from_the_last_status_event() -> None:
    events = [ev(1, EventKind.CREATED, 0), ev(2, EventKind.STATUS, 1, Status.RUNNING)]
    assert derive_status(events) is Status.RUNNING
    assert derive_status(events[:1]) is Status.PENDING
    events.append(ev(3, EventKind.STATUS, 2, Status.FAILED))
    assert derive_status(events) is Status.FAILED


def test_a_final_status_is_never_left() -> None:
    events = [
        ev(1, EventKind.STATUS, 1, Status.SUCCEEDED),
        ev(2, EventKind.STATUS, 2, Status.RUNNING),
    ]
    assert derive_status(events) is Status.SUCCEEDED


def test_cancel_request_shows_cancelling_until_the_run_really_ends() -> None:
    events = [ev(1, EventKind.STATUS, 1, Status.RUNNING), ev(2, EventKind.CANCEL_REQUESTED, 2)]
    assert derive_status(events) is Status.CANCELLING
    # the swap had begun: the deploy completed anyway; the request stays in the audit trail
    done = [*events, ev(3, EventKind.STATUS, 3, Status.SUCCEEDED)]
    record = DeployRecord.build(make_deploy(), done)
    assert record.status is Status.SUCCEEDED and record.cancel_requested


def test_duration_runs_to_first_healthy_response() -> None:
    events = [
        ev(1, EventKind.CREATED, 0),
        ev(2, EventKind.STATUS, 1, Status.RUNNING),
        ev(3, EventKind.FIRST_HEALTHY, 2.5),
        ev(4, EventKind.STATUS, 3, Status.SUCCEEDED),
    ]
    record = DeployRecord.build(make_deploy(), reversed(events))  # order comes from seq
    assert record.duration == (timedelta(seconds=90), DurationBasis.FIRST_HEALTHY)
    assert record.started_at == T0 + timedelta(minutes=1)
    assert record.finished_at == T0 + timedelta(minutes=3)


def test_duration_falls_back_to_run_completion_and_says_so() -> None:
    events = [ev(1, EventKind.STATUS, 1, Status.RUNNING), ev(2, EventKind.STATUS, 4, Status.FAILED)]
    record = DeployRecord.build(make_deploy(), events)
    assert record.duration == (timedelta(minutes=3), DurationBasis.RUN_COMPLETED)
    running = DeployRecord.build(make_deploy(), events[:1])
    assert running.duration is None


def test_run_link_and_diagnosis_come_from_events() -> None:
    events = [
        ev(1, EventKind.CREATED, 0),
        ev(2, EventKind.RUN_LINKED, 0.1, run_id=7, run_url="https://github.com/a/b/actions/runs/7"),
        ev(
            3,
            EventKind.DIAGNOSIS,
            2,
            cause="Health check timed out",
            fix="bind 0.0.0.0:$PORT",
            line="x",
        ),
    ]
    record = DeployRecord.build(make_deploy(), events)
    assert record.run_id == 7 and record.run_url and record.run_url.endswith("/7")
    assert record.diagnosis is not None and record.diagnosis.fix == "bind 0.0.0.0:$PORT"


def test_status_event_ids_are_deterministic() -> None:
    assert status_event_id("a1b2c3d4e5f6", Status.RUNNING) == status_event_id(
        "a1b2c3d4e5f6", Status.RUNNING
    )
    assert status_event_id("a1b2c3d4e5f6", Status.RUNNING) != status_event_id(
        "a1b2c3d4e5f6", Status.FAILED
    )


def test_iso_round_trip_is_utc() -> None:
    assert from_iso(to_iso(T0)) == T0
    assert from_iso("2026-11-27T12:00:00Z") == T0
    with pytest.raises(ValidationError):
        from_iso("2026-11-27T12:00:00")
