"""Failure diagnosis over realistic GitHub job logs, Kamal output and kamal-proxy output."""

from __future__ import annotations

import pytest

from tests.unit import logsamples as s
from vmkit_tui.sources.github.job_log import parse_job_log
from vmkit_tui.tracking.diagnose import diagnose


def lines_of(log: str) -> list:
    return list(parse_job_log(log).lines)


def test_good_deploy_full_log_has_no_diagnosis() -> None:
    # The success log echoes "is missing the 'service' label" inside a command and has a
    # failed `docker network create`: neither is a failure.
    assert diagnose(lines_of(s.SUCCESS_LOG)) is None
    assert diagnose(s.SUCCESS_LOG.splitlines()) is None


def test_good_kamal_and_proxy_output_have_no_diagnosis() -> None:
    kamal = [line for line in s.DEPLOY_OK if not line.startswith(("##[", "kamal ", "shell:"))]
    assert diagnose(kamal, source="kamal") is None
    assert diagnose(s.KAMAL_PROXY_OK, source="kamal-proxy") is None


def test_buildpack_detection_without_procfile() -> None:
    found = diagnose(lines_of(s.BUILDPACK_DETECT_FAILED))
    assert found is not None
    assert found.cause == "Buildpack detection failed: the app has no Procfile"
    assert "Procfile" in found.fix
    assert found.line == "ERROR: failed to detect: no buildpacks participating"
    assert found.source == "github"


def test_buildpack_detection_without_procfile_hint_says_so_generically() -> None:
    log = s.github_log(
        s.BUILD_OK[:9], ["ERROR: No buildpack groups passed detection."], s.FAILED_STEP
    )
    found = diagnose(lines_of(log))
    assert found is not None
    assert found.cause == "Buildpack detection failed: no buildpack recognised the app"


def test_ghcr_push_denied_prefers_the_specific_message_over_the_generic_403() -> None:
    found = diagnose(lines_of(s.GHCR_DENIED))
    assert found is not None
    assert found.line == "denied: permission_denied: write_package"
    assert "permissions: packages: write" in found.fix
    assert "cannot write packages" in found.cause


def test_generic_ghcr_403_still_diagnosed() -> None:
    log = s.github_log(
        s.BUILD_OK[:4],
        [
            "ERROR: failed to export: unexpected status from PUT request to https://ghcr.io/v2/"
            "acme/web/blobs/uploads/: 403 Forbidden"
        ],
        s.FAILED_STEP,
    )
    found = diagnose(lines_of(log))
    assert found is not None and "403" in found.cause
    assert "packages: write" in found.fix


def test_health_timeout_points_at_the_loopback_bind() -> None:
    log = parse_job_log(s.HEALTH_TIMEOUT)
    found = diagnose(list(log.lines))
    assert found is not None
    assert "127.0.0.1:3000" in found.cause
    assert "0.0.0.0:$PORT" in found.fix
    assert found.line.startswith("docker stderr: Error: target failed to become healthy")
    assert log.lines[found.line_number - 1].text.endswith("timeout (30s)")


def test_health_timeout_from_kamal_proxy_json() -> None:
    found = diagnose(s.KAMAL_PROXY_TIMEOUT, source="kamal-proxy")
    assert found is not None
    assert found.source == "kamal-proxy"
    assert found.cause.startswith("Health check timed out")
    assert found.line_number == 3


def test_health_timeout_from_the_vmkit_agent() -> None:
    lines = [
        f"watching new container web-web-production-{s.SHA} (ad9e1df96129)",
        f"new container web-web-production-{s.SHA} never became healthy within 30s; "
        f"traffic stays on web-web-production-{s.OLD_SHA}",
    ]
    found = diagnose(lines, source="vmkit-agent")
    assert found is not None and found.line_number == 2
    assert "0.0.0.0:$PORT" in found.fix


@pytest.mark.parametrize(
    ("lines", "cause_part", "fix_part"),
    [
        (s.SSH_TIMEOUT_KAMAL, "(172.31.23.194)", "port 22"),
        (s.SSH_REFUSED_KAMAL, "(203.0.113.10)", "VM is running"),
        (s.SSH_AUTH_KAMAL, "refused Kamal's SSH key (49.13.0.7)", "deploy key"),
        (s.LOCK_HELD_KAMAL, "Locked by: Jane Doe", "kamal lock release"),
        (s.SERVICE_LABEL_KAMAL, "`service` label", "service="),
        (s.MANIFEST_UNKNOWN_KAMAL, "no longer in GHCR", "rebuild"),
    ],
)
def test_kamal_failures(lines: list[str], cause_part: str, fix_part: str) -> None:
    found = diagnose(lines, source="kamal")
    assert found is not None
    assert cause_part in found.cause
    assert fix_part in found.fix
    assert found.line == lines[found.line_number - 1].strip()


def test_rollback_target_missing_suggests_deploy_of_that_sha() -> None:
    found = diagnose(s.ROLLBACK_MISSING_KAMAL, source="kamal")
    assert found is not None
    assert found.fix.endswith(f"`kamal deploy --skip-push --version {s.OLD_SHA}`")
    assert "is not available as a container" in found.line


def test_rollback_fix_never_repeats_a_version_that_is_not_a_sha() -> None:
    line = "The app version '$(reboot)' is not available as a container (use 'kamal app …')"
    found = diagnose([line], source="kamal")
    assert found is not None
    assert "$(reboot)" not in found.fix and "--version <sha>" in found.fix


def test_same_failure_inside_a_github_log_step() -> None:
    log = s.github_log(s.SET_UP, s.DEPLOY_OK[:4], s.SSH_AUTH_KAMAL, s.FAILED_STEP, s.CLEANUP)
    found = diagnose(lines_of(log))
    assert found is not None and "SSH key" in found.cause


def test_anchor_is_the_last_error_not_the_end_of_the_log() -> None:
    # Cleanup after the failure mentions a lock; the failing step is the SSH one.
    cleanup = [*s.CLEANUP, "Deploy lock already in place!"]
    log = s.github_log(s.DEPLOY_OK[:4], s.SSH_TIMEOUT_KAMAL, s.FAILED_STEP, cleanup)
    found = diagnose(lines_of(log))
    assert found is not None and "could not connect" in found.cause


def test_search_is_confined_to_the_failing_step() -> None:
    # An earlier, successful step printed a lock message; the failing step says nothing known.
    earlier = ["##[group]Run ./bin/check", "./bin/check", "##[endgroup]", "Deploy lock found"]
    failing = ["##[group]Run ./bin/smoke", "./bin/smoke", "##[endgroup]", "smoke test failed"]
    log = s.github_log(earlier, failing, s.FAILED_STEP)
    found = diagnose(lines_of(log))
    assert found is not None and found.cause == "Unrecognised failure: smoke test failed"
    assert "lock" not in found.fix.lower() and found.line == "smoke test failed"


def test_falls_back_to_an_earlier_error_when_the_last_explains_nothing() -> None:
    always_step = ["##[group]Run ./notify-slack", "./notify-slack", "##[endgroup]", "curl: (6)"]
    log = s.github_log(s.DEPLOY_OK[:4], s.SSH_AUTH_KAMAL, s.FAILED_STEP, always_step, s.FAILED_STEP)
    found = diagnose(lines_of(log))
    assert found is not None and "SSH key" in found.cause


def test_script_echo_under_the_step_header_is_not_evidence() -> None:
    step = [
        "##[group]Run kamal lock release || echo 'Deploy lock already in place'",
        "kamal lock release || echo 'Deploy lock already in place'",
        "##[endgroup]",
        "some unrelated failure",
    ]
    found = diagnose(lines_of(s.github_log(step, s.FAILED_STEP)))
    assert found is not None and found.cause.startswith("Unrecognised failure")
    assert "lock" not in found.cause.lower() + found.fix.lower()
    assert found.line == "some unrelated failure"


def test_ansi_colours_do_not_hide_a_match() -> None:
    line = "\x1b[31m  ERROR (Net::SSH::AuthenticationFailed): Exception while executing on host h1\x1b[0m"
    found = diagnose([line], source="kamal")
    assert found is not None and "\x1b" not in found.line


def test_github_log_without_error_is_not_diagnosed_even_with_failure_words() -> None:
    log = s.github_log(s.DEPLOY_OK[:4], ["##[warning]Net::SSH::ConnectionTimeout (retrying)"])
    assert diagnose(lines_of(log)) is None


def test_quoted_line_is_bounded() -> None:
    found = diagnose(["Net::SSH::AuthenticationFailed " + "x" * 10_000], source="kamal")
    assert found is not None and len(found.line) == 500


@pytest.mark.parametrize("lines", [s.CLASSIC_BUILDPACK_FAILED, s.CLASSIC_BUILDPACK_UNSUPPORTED])
def test_classic_heroku_buildpack_wording(lines: list[str]) -> None:
    found = diagnose(lines, source="github")
    assert found is not None and found.cause.startswith("Buildpack detection failed")


@pytest.mark.parametrize(
    ("log", "cause_part"),
    [
        (s.GHCR_401, "401 unauthenticated"),
        (s.GHCR_403_PAREN, "403 Forbidden"),
        (s.GHCR_403_ORG, "cannot write packages"),
    ],
    ids=["401", "403-paren", "403-org"],
)
def test_ghcr_denials_when_ghcr_is_named_anywhere_in_the_step(log: str, cause_part: str) -> None:
    found = diagnose(lines_of(log))
    assert found is not None and cause_part in found.cause
    assert "ghcr.io" not in found.line  # the evidence line itself does not name the registry


def test_a_403_from_another_registry_is_not_blamed_on_ghcr() -> None:
    found = diagnose(lines_of(s.DOCKERHUB_403))
    assert found is not None and found.cause.startswith("Unrecognised failure")
    assert "GHCR" not in found.cause + found.fix


def test_kamal_1_healthcheck_error() -> None:
    found = diagnose(s.KAMAL1_HEALTHCHECK, source="kamal")
    assert found is not None and found.cause.startswith("Health check")
    assert found.line_number == len(s.KAMAL1_HEALTHCHECK)  # the ERROR line, not the retries
    assert diagnose(s.KAMAL1_HEALTHY, source="kamal") is None  # retries alone are normal


@pytest.mark.parametrize(
    ("lines", "cause"),
    [
        (s.SSH_DNS_KAMAL, "Kamal could not resolve the VM's host name (app-1.internal.example)"),
        (s.SSH_IO_TIMEOUT_KAMAL, "Kamal's SSH session to the VM timed out (203.0.113.10)"),
    ],
)
def test_dns_and_mid_session_timeouts_are_reachability(lines: list[str], cause: str) -> None:
    found = diagnose(lines, source="kamal")
    assert found is not None and found.cause == cause
    assert "port 22" in found.fix


def test_a_closed_connection_is_ambiguous_and_says_both() -> None:
    found = diagnose(s.SSH_DISCONNECT_KAMAL, source="kamal")
    assert found is not None
    assert "authentication" in found.cause and "network" in found.cause
    assert "authorized_keys" in found.fix and "reachable" in found.fix


@pytest.mark.parametrize(
    ("status", "cause", "fix"),
    [(301, "answered 301", "redirects"), (404, "answered 404", "not found")],
)
def test_a_health_path_answering_3xx_or_4xx_gets_path_advice(
    status: int, cause: str, fix: str
) -> None:
    found = diagnose(s.health_answered(status), source="kamal")
    assert found is not None and cause in found.cause
    assert fix in found.fix and "0.0.0.0" not in found.fix


def test_lock_wait_giving_up_is_the_lock() -> None:
    lines = [
        "Deploy lock is held by:",
        "Locked by: Ana Lima at 2026-05-01T09:58:12Z",
        "Timed out after 60s waiting for the deploy lock",
        "  Finished all in 61.4 seconds",
        "  \x1b[31mERROR (Kamal::Cli::LockError): Timed out waiting for deploy lock\x1b[0m",
    ]
    found = diagnose(lines, source="kamal")
    assert found is not None and "Locked by: Ana Lima" in found.cause
    assert found.line == "ERROR (Kamal::Cli::LockError): Timed out waiting for deploy lock"


def test_an_unknown_kamal_error_is_unrecognised_and_quotes_it() -> None:
    lines = [
        "  Finished all in 3.0 seconds",
        "  ERROR (Kamal::ConfigurationError): servers/web: should be an array or a hash",
    ]
    found = diagnose(lines, source="kamal")
    assert found is not None
    assert found.cause == (
        "Unrecognised failure: ERROR (Kamal::ConfigurationError): servers/web: should be an "
        "array or a hash"
    )
    assert found.line_number == 2


@pytest.mark.parametrize("log", [s.SCARY_SUCCESS_LOG, s.CANCELLED_LOG], ids=["ok", "cancelled"])
def test_no_claim_on_successful_or_cancelled_logs(log: str) -> None:
    assert diagnose(lines_of(log)) is None


def test_the_health_status_pattern_reads_both_shapes_of_a_non_2xx_answer() -> None:
    from vmkit_tui.tracking.diagnose import _HEALTH_STATUS

    access = _HEALTH_STATUS.search('10.0.0.2 - - [01/May/2026] "GET /up HTTP/1.1" 404 0 "-"')
    assert access is not None and access.group(2) == "404"
    proxy = _HEALTH_STATUS.search("health check failed: unexpected status (301)")
    assert proxy is not None and proxy.group(1) == "301"
    assert _HEALTH_STATUS.search('"GET /up HTTP/1.1" 200 2') is None
    assert _HEALTH_STATUS.search('"GET /up HTTP/１.1" 404 0') is None  # ASCII digits only


def test_a_role_without_kamal_proxy_gets_no_proxy_health_advice() -> None:
    found = diagnose(s.WORKER_NOT_READY, source="kamal")
    assert found is not None
    assert found.cause == (
        "The workers role's container without kamal-proxy was not running after 30 s: its "
        "process exited"
    )
    assert "`kamal app logs -r workers`" in found.fix and "`cmd`" in found.fix
    assert "0.0.0.0" not in found.fix and "/up" not in found.fix
    assert found.line_number == len(s.WORKER_NOT_READY)


def test_a_failed_docker_run_is_not_called_a_health_check_failure() -> None:
    found = diagnose(s.RUN_FAILED_KAMAL, source="kamal")
    assert found is not None
    assert found.cause.startswith("Unrecognised failure: ") and "Conflict." in found.cause


def test_after_a_rollback_that_found_no_container_the_deploys_failure_is_the_cause() -> None:
    found = diagnose(s.ROLLBACK_THEN_DEPLOY_MISSING, source="kamal")
    assert found is not None
    assert found.cause == "The image for this commit is no longer in GHCR"
    rollback_only = s.ROLLBACK_THEN_DEPLOY_MISSING[:4]
    found = diagnose(rollback_only, source="kamal")
    assert found is not None and "no longer a stopped container" in found.cause
