"""Kamal's verdict from its output (never its exit status alone), `kamal lock status`, the
run step where Kamal starts, and what the cancel dialog warns about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vmkit_tui.actions.cancel import CancelPreflight
from vmkit_tui.domain.models import Deploy, DeployEvent, DeployRecord, EventKind, NewEvent, Trigger
from vmkit_tui.sources.github.results import Job, Step
from vmkit_tui.sources.kamal import kamal_step, kamal_verdict, parse_lock_status

SHA = "9f2c1ab4e0d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

# Real Kamal 2 output (strings from Kamal's source and real issues).
SUCCESS = [
    "Acquiring the deploy lock...",
    f"Start container with version {SHA} (or reboot if already running)...",
    "  INFO [99cc00dd] Running docker exec kamal-proxy kamal-proxy deploy web-web-production "
    '--target="ad9e1df96129:3000" on 203.0.113.10',
    "  INFO [99cc00dd] Finished in 12.874 seconds with exit status 0 (successful).",
    "  INFO First web container is healthy on 203.0.113.10, booting any other roles",
    "Releasing the deploy lock...",
    "  Finished all in 38.6 seconds",
]
NOT_RETAINED = [
    "Acquiring the deploy lock...",
    "  INFO [37d62513] Running docker container ls --all --filter name=^web-prod-x$ --quiet on h",
    "  INFO [37d62513] Finished in 0.111 seconds with exit status 0 (successful).",
    f"Error looking for container version {SHA}: Exception while executing on host prodserver: "
    "Container not found",
    f"The app version '{SHA}' is not available as a container (use 'kamal app containers' for "
    "available versions)",
    "Releasing the deploy lock...",
    "  Finished all in 1.4 seconds",
]
HEALTH_FAILED = [
    " ERROR Failed to boot web on 203.0.113.10",
    "Releasing the deploy lock...",
    "  Finished all in 45.2 seconds",  # printed before the ERROR line
    "  ERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
    "docker exit status: 1",
    "docker stdout: Nothing written",
    "docker stderr: Error: target failed to become healthy within configured timeout (30s)",
]
LOCK_HELD = [
    "Acquiring the deploy lock...",
    "Deploy lock already in place!",
    "Locked by: Jane Doe at 2026-05-01T10:00:00Z",
    "  Finished all in 1.9 seconds",
    "  ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more information",
]


def test_success_needs_the_finished_line_and_no_error() -> None:
    verdict = kamal_verdict(SUCCESS, 0)
    assert verdict.succeeded and not verdict.not_retained
    assert verdict.finished_in == 38.6 and verdict.error == ""


def test_a_version_not_kept_exits_0_but_is_not_a_success() -> None:
    verdict = kamal_verdict(NOT_RETAINED, 0)
    assert not verdict.succeeded and verdict.not_retained
    assert verdict.finished_in == 1.4


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (HEALTH_FAILED, "ERROR (SSHKit::Command::Failed): Exception while executing on host"),
        (LOCK_HELD, "ERROR (Kamal::Cli::LockError): Deploy lock found."),
    ],
)
def test_failures_take_bin_kamals_error_line(lines: list[str], error: str) -> None:
    verdict = kamal_verdict(lines, 1)
    assert not verdict.succeeded and not verdict.not_retained
    assert verdict.error.startswith(error)


RED, RESET = "\x1b[31m", "\x1b[0m"
# bin/kamal colours its last line red even into a pipe (seen from the real Kamal 2.11).
REFUSED_RED = [
    "  Finished all in 0.2 seconds",
    f"  {RED}ERROR (Errno::ECONNREFUSED): Exception while executing on host 127.0.0.1: "
    f"Connection refused - connect(2) for 127.0.0.1:2299{RESET}",
]
# `kamal deploy --lock-wait`: the holder's details once, retries, then Kamal gives up.
LOCK_WAIT_TIMED_OUT = [
    "Acquiring the deploy lock (waiting up to 60s)...",
    "Deploy lock is held by:",
    "Locked by: Ana Lima at 2026-05-01T09:58:12Z",
    f"Version: {SHA}",
    "Message: Automatic deploy lock",
    "Retrying in 10s (59s remaining)...",
    "Retrying in 10s (9s remaining)...",
    "Timed out after 60s waiting for the deploy lock",
    "  Finished all in 61.4 seconds",
    f"  {RED}ERROR (Kamal::Cli::LockError): Timed out waiting for deploy lock{RESET}",
]
LOCK_WAIT_MANUAL = [
    "Acquiring the deploy lock (waiting up to 60s)...",
    "Deploy lock is held by:",
    "Locked by: Ana Lima at 2026-05-01T09:58:12Z",
    f"Version: {SHA}",
    "Message: migrating the orders table, do not deploy",
    "  Finished all in 1.1 seconds",
    "  ERROR (Kamal::Cli::LockError): Deploy lock held manually, not waiting. Run 'kamal lock "
    "help' for more information",
]
LOCK_WAIT_THEN_DEPLOYED = [
    "Acquiring the deploy lock (waiting up to 60s)...",
    "Deploy lock is held by:",
    "Locked by: Ana Lima at 2026-05-01T09:58:12Z",
    "Retrying in 10s (59s remaining)...",
    *SUCCESS[1:],
]


def test_a_red_error_line_is_read_without_its_escapes() -> None:
    verdict = kamal_verdict(REFUSED_RED, 1)
    assert not verdict.succeeded
    assert verdict.error == (
        "ERROR (Errno::ECONNREFUSED): Exception while executing on host 127.0.0.1: "
        "Connection refused - connect(2) for 127.0.0.1:2299"
    )
    # Even the fallback that quotes Kamal's last line shows no escape.
    odd = kamal_verdict([f"{RED}something Kamal never prints{RESET}"], 1)
    assert "\x1b" not in odd.error and odd.error.endswith("something Kamal never prints")


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (LOCK_WAIT_TIMED_OUT, "ERROR (Kamal::Cli::LockError): Timed out waiting for deploy lock"),
        (LOCK_WAIT_MANUAL, "ERROR (Kamal::Cli::LockError): Deploy lock held manually, not waiting"),
    ],
)
def test_lock_wait_giving_up_is_a_failure(lines: list[str], error: str) -> None:
    verdict = kamal_verdict(lines, 1)
    assert not verdict.succeeded and verdict.error.startswith(error)


def test_waiting_for_the_lock_then_deploying_is_a_success() -> None:
    verdict = kamal_verdict(LOCK_WAIT_THEN_DEPLOYED, 0)
    assert verdict.succeeded and verdict.error == ""


def test_an_error_line_fails_even_with_exit_status_0() -> None:
    assert not kamal_verdict([*SUCCESS, *LOCK_HELD[-1:]], 0).succeeded


def test_exit_status_and_missing_finish_line_fail() -> None:
    failed = kamal_verdict(SUCCESS, 1)
    assert not failed.succeeded and "status 1" in failed.error
    cut = kamal_verdict(SUCCESS[:-1], 0)
    assert not cut.succeeded and "Finished all in" in cut.error
    unknown = kamal_verdict(SUCCESS[:3], None)
    assert not unknown.succeeded and "unknown status" in unknown.error


def test_an_ssh_failure_wins_over_anything_printed() -> None:
    verdict = kamal_verdict(NOT_RETAINED, None, "cannot reach deploy@vm: connection refused")
    assert not verdict.succeeded and not verdict.not_retained  # do not redeploy blindly
    assert verdict.error == "cannot reach deploy@vm: connection refused"


def test_lock_status() -> None:
    assert parse_lock_status(["There is no deploy lock"]).held is False
    held = parse_lock_status(
        [
            "  INFO [a1] Running /usr/bin/env mkdir -p .kamal on 203.0.113.10",
            "Locked by: Jane Doe at 2026-05-01T10:00:00Z",
            "Version: 3c4d5e6f",
            "Message: Automatic deploy lock",
        ]
    )
    assert held.held is True
    assert held.details == (
        "Locked by: Jane Doe at 2026-05-01T10:00:00Z",
        "Version: 3c4d5e6f",
        "Message: Automatic deploy lock",
    )
    assert parse_lock_status([f"{RED}There is no deploy lock{RESET}"]).held is False
    assert parse_lock_status(["ERROR (SSHKit::Runner::ExecuteError): boom"]).held is None
    assert parse_lock_status([]).held is None


def step(name: str, status: str, conclusion: str | None = None, number: int = 1) -> Step:
    return Step(name, number, status, conclusion, T0, None)


def job(*steps: Step) -> Job:
    return Job(1, 2, "deploy", "in_progress", None, T0, None, None, steps)


def test_the_kamal_step_counts_once_it_has_started() -> None:
    before = job(
        step("Set up job", "completed", "success", 1),
        step("Install Kamal", "in_progress", None, 2),
        step("Deploy with Kamal", "queued", None, 3),
    )
    assert kamal_step([before]) is None
    running = job(
        step("Install Kamal", "completed", "success", 2), step("Deploy with Kamal", "in_progress")
    )
    found = kamal_step([running])
    assert found is not None and found.name == "Deploy with Kamal"
    assert kamal_step([job(step("Run kamal deploy -P --version x", "completed", "success"))])
    skipped = job(step("Deploy with Kamal", "completed", "skipped"))  # cancelled before it
    assert kamal_step([skipped]) is None


def record(**data: Any) -> DeployRecord:
    deploy = Deploy("0123456789ab", "acme/app", "production", SHA, Trigger.PUSH, "me", T0)
    created = NewEvent(deploy.id, EventKind.CREATED, T0, data=data)
    return DeployRecord.build(deploy, [DeployEvent.from_new(created, 1)])


def test_cancel_warnings_follow_what_is_known() -> None:
    quiet = CancelPreflight(record(), None, T0)
    assert quiet.warnings == () and not quiet.kamal_started and not quiet.force_sensible
    started = CancelPreflight(record(), None, T0, kamal_step="Deploy with Kamal")
    assert any("may complete anyway" in w for w in started.warnings)
    assert any("deploy lock" in w for w in started.warnings)
    swapping = CancelPreflight(record(), None, T0, swap_seen=True)
    assert swapping.kamal_started
    assert any("already switching traffic" in w for w in swapping.warnings)
    unknown = CancelPreflight(record(), None, T0, steps_problem="502")
    assert any("Cannot tell whether Kamal has started (502)" in w for w in unknown.warnings)


def test_force_cancel_is_sensible_only_after_a_while() -> None:
    asked = T0 - timedelta(seconds=10)
    early = CancelPreflight(
        record(), None, T0, cancel_requested_at=asked, force_after=asked + timedelta(seconds=30)
    )
    assert not early.force_sensible
    assert any("if the run has not stopped by 12:00:20 UTC" in w for w in early.warnings)
    late = CancelPreflight(
        record(), None, T0, cancel_requested_at=asked, force_after=asked + timedelta(seconds=5)
    )
    assert late.force_sensible
    assert any("force-cancel it now" in w for w in late.warnings)
