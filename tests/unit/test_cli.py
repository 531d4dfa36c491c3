"""The CLI's and MCP server's pure parts: the views in `present` (sanitised, stable JSON), the
name and target checks, log windows over a real spool file, when a finished deploy has
settled, the confirmation rule, and the argument parser."""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vmkit_tui.__main__ import build_parser
from vmkit_tui.actions.cancel import CancelPreflight
from vmkit_tui.actions.preflight import MigrationCheck, Preflight, TargetInfo
from vmkit_tui.config import Config, EnvironmentConfig, RepoConfig, RollbackStrategy
from vmkit_tui.domain.eligibility import Eligibility, RollbackEligibility
from vmkit_tui.domain.event_ids import log_marker_id
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    Diagnosis,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
)
from vmkit_tui.frontends.cli.commands import _confirm
from vmkit_tui.frontends.cli.output import Failed
from vmkit_tui.frontends.cli.waiting import settled
from vmkit_tui.frontends.present import (
    cancel_lines,
    clean,
    event_line,
    log_json,
    log_line,
    preflight_json,
    preflight_lines,
    record_json,
    status_line,
)
from vmkit_tui.frontends.shared import (
    UsageError,
    check_deploy_id,
    check_environment,
    check_target,
    log_window,
)
from vmkit_tui.sources.github.results import ImageCheck, ImageState
from vmkit_tui.store.spool import LogRecord, SpoolWriter

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOSTILE = "\x1b]52;c;aGVsbG8=\x07[/]\x1b[2J[@click=app.quit]x\x9b"
TOKEN = "ghp_" + "Z9y8X7w6V5" * 4
RECORD_KEYS = {
    "rollback_eligibility",
    "rollback_eligibility_reason",
    "id",
    "repo",
    "environment",
    "sha",
    "status",
    "triggered_by",
    "actor",
    "run_id",
    "run_url",
    "rollback_of",
    "created_at",
    "started_at",
    "first_healthy_at",
    "finished_at",
    "duration_seconds",
    "duration_basis",
    "cancel_requested",
    "diagnosis",
    "title",
}
_seq = itertools.count(1)


def record(
    *events: tuple[EventKind, Status | None, str, dict[str, object]],
    actor: str = "priya-r",
    run_id: int | None = 7,
    sha: str = "a" * 40,
) -> DeployRecord:
    deploy = Deploy(
        id=new_deploy_id(),
        repo="acme/storefront",
        environment="production",
        sha=sha,
        triggered_by=Trigger.MCP,
        actor=actor,
        created_at=T0,
        run_id=run_id,
    )
    news = [NewEvent(deploy.id, EventKind.CREATED, T0, data={"title": f"Fix it {HOSTILE}"})]
    news += [
        NewEvent(deploy.id, kind, T0 + timedelta(seconds=n + 1), status, detail, data)
        for n, (kind, status, detail, data) in enumerate(events)
    ]
    return DeployRecord.build(deploy, [DeployEvent.from_new(e, next(_seq)) for e in news])


def status(value: Status, detail: str = "") -> tuple[EventKind, Status, str, dict[str, object]]:
    return (EventKind.STATUS, value, detail, {})


def test_clean_removes_escapes_and_tokens_keeps_markup_as_text() -> None:
    assert clean(f"{HOSTILE} {TOKEN}") == "[/][@click=app.quit]x [REDACTED]"


def test_record_json_keeps_its_stable_keys_and_sanitises_remote_text() -> None:
    diagnosis = Diagnosis("Health check timed out", "Bind 0.0.0.0:$PORT", f"line {HOSTILE}")
    failed = record(
        status(Status.RUNNING),
        status(Status.FAILED),
        (EventKind.DIAGNOSIS, None, diagnosis.cause, diagnosis.to_data()),
        actor=f"eve{HOSTILE}",
    )
    data = record_json(failed)
    assert set(data) == RECORD_KEYS
    assert (data["rollback_eligibility"], data["rollback_eligibility_reason"]) == (
        "unknown",
        "not checked yet",
    )
    gone = RollbackEligibility(Eligibility.GONE, f"no container on h1; {HOSTILE}")
    checked = record_json(failed, gone)
    assert checked["rollback_eligibility"] == "gone"
    assert checked["rollback_eligibility_reason"] == "no container on h1; [/][@click=app.quit]x"
    assert data["actor"] == "eve[/][@click=app.quit]x"
    assert data["title"] == "Fix it [/][@click=app.quit]x"
    assert data["diagnosis"]["line"] == "line [/][@click=app.quit]x"
    assert (data["status"], data["triggered_by"], data["duration_seconds"]) == (
        "failed",
        "mcp",
        1.0,
    )


def test_event_lines_are_one_sanitised_line_with_the_useful_data() -> None:
    cancelled = record(
        (EventKind.CANCEL_REQUESTED, None, f"cancel\n{HOSTILE}", {"actor": "claude", "x": 1}),
        status(Status.CANCELLED, "GitHub run 7: completed (cancelled)"),
    )
    created, requested, ended = (event_line(e, cancelled) for e in cancelled.events)
    assert created == "recorded: mcp by priya-r"
    assert requested == "cancel requested · cancel [/][@click=app.quit]x · actor=claude"
    assert ended == "status → cancelled · GitHub run 7: completed (cancelled)"
    assert status_line(cancelled).endswith(
        f"{cancelled.id} cancelled  GitHub run 7: completed (cancelled)"
    )


def _preflight(image: ImageState, files: tuple[str, ...] = ()) -> Preflight:
    target = record(status(Status.SUCCEEDED), sha="b" * 40)
    live = record(status(Status.SUCCEEDED), sha="c" * 40)
    return Preflight(
        repo="acme/storefront",
        environment="production",
        strategy=RollbackStrategy.GITHUB,
        image="ghcr.io/acme/storefront",
        target=TargetInfo("b" * 40, target, f"Add orders {HOSTILE}", True),
        live=live,
        image_check=ImageCheck(image),
        migrations=MigrationCheck(files=files, compared="ahead"),
        checked_at=T0 + timedelta(hours=3),
    )


def test_preflight_lines_show_what_the_tui_dialog_shows() -> None:
    check = _preflight(ImageState.MISSING, (f"db/migrate/1_drop{HOSTILE}.rb",))
    lines = preflight_lines(check)
    assert lines[:2] == [
        f"Target     bbbbbbb  {'b' * 40}",
        "Commit     Add orders [/][@click=app.quit]x",
    ]
    assert lines[2].startswith("Deployed   3h ago by priya-r (succeeded, deploy ")
    assert f"Live now   ccccccc  {'c' * 40}" in lines
    assert (
        "Image      ghcr.io/acme/storefront:bbbbbbb is no longer in GHCR (deleted since it was "
        "deployed)" in lines
    )
    assert any(
        line.startswith("✗ The image ghcr.io/acme/storefront:bbbbbbb is no longer")
        for line in lines
    )
    assert any("1 migration file(s)" in line and "1_drop[/]" in line for line in lines)
    assert not any("\x1b" in line for line in lines)


def test_preflight_json_carries_the_facts_an_assistant_confirms() -> None:
    data = preflight_json(_preflight(ImageState.PRESENT, ("db/migrate/2_add.rb",)))
    assert data["target"]["sha"] == "b" * 40
    assert data["target"]["commit_message"] == "Add orders [/][@click=app.quit]x"
    assert data["live"]["sha"] == "c" * 40
    assert data["image"] == {
        "ref": f"ghcr.io/acme/storefront:{'b' * 40}",
        "state": "present",
        "reason": "",
    }
    assert data["migrations"]["files"] == ["db/migrate/2_add.rb"]
    assert data["blockers"] == []
    assert any("secrets" in warning for warning in data["warnings"])


def test_cancel_lines_warn_when_kamal_has_started() -> None:
    running = record(status(Status.RUNNING))
    check = CancelPreflight(running, None, T0, kamal_step="Deploy with Kamal")
    lines = cancel_lines(check)
    assert lines[0] == f"Deploy     {running.id}  aaaaaaa on production (running)"
    assert "Step       Deploy with Kamal" in lines
    assert any(line.startswith("! Kamal has already started") for line in lines)


def test_log_views_are_sanitised_and_long_lines_cut() -> None:
    line = LogRecord(T0, f"deploy{HOSTILE}", "github", f"{TOKEN} {'z' * 50}")
    assert (
        log_line(line)
        == f"2026-05-01 12:00:00Z github[deploy[/][@click=app.quit]x] [REDACTED] {'z' * 50}"
    )
    data = log_json(4, line, max_chars=20)
    assert data["index"] == 4 and data["text"] == "[REDACTED] zzzzzzzzz… [41 more characters]"


# ---------------------------------------------------------------------------- checks


def test_targets_and_deploy_ids_are_checked_by_shape() -> None:
    assert check_target(None) is None
    assert check_target("0123456789ab") == "0123456789ab"
    assert check_target("f" * 40) == "f" * 40
    assert check_target("aafb429") == "aafb429"  # the short SHA shown everywhere
    assert check_target("f" * 39) == "f" * 39
    for bad in ("F" * 40, "f" * 41, "abcdef", "abc", "0123456789ab\n", "aafb429 "):
        with pytest.raises(UsageError):
            check_target(bad)
    with pytest.raises(UsageError, match="Not a deploy id"):
        check_deploy_id("../etc/passwd")


def test_an_unknown_environment_names_the_configured_ones() -> None:
    config = Config(
        source=None,
        repos=(RepoConfig("acme/a", "ghcr.io/acme/a", (EnvironmentConfig("production"),)),),
    )
    assert check_environment(config, "acme/a", "production").name == "production"
    with pytest.raises(UsageError, match=r"acme/a staging is not .*\(acme/a: production\)"):
        check_environment(config, "acme/a", "staging")


def test_log_windows_over_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "0123456789ab.log"
    with SpoolWriter(path) as writer:
        writer.append_many(
            LogRecord(T0, "h", "kamal-proxy" if n % 3 == 0 else "github", f"line {n}")
            for n in range(10_000)
        )
    last = log_window(path, last=3, start=None, count=0, source=None)
    assert last.total == 10_000 and [i for i, _ in last.lines] == [9997, 9998, 9999]
    proxy = log_window(path, last=2, start=None, count=0, source="kamal-proxy")
    assert [r.text for _, r in proxy.lines] == ["line 9996", "line 9999"]
    window = log_window(path, last=None, start=4095, count=3, source="github")
    assert [i for i, _ in window.lines] == [4096, 4097] and window.next_start == 4098
    end = log_window(path, last=None, start=9998, count=100, source=None)
    assert len(end.lines) == 2 and end.next_start is None
    missing = log_window(tmp_path / "none.log", last=5, start=None, count=0, source=None)
    assert missing.total == 0 and missing.lines == []


def test_a_finished_deploy_has_settled_once_its_log_or_diagnosis_is_in() -> None:
    ok = record(status(Status.SUCCEEDED))
    assert not settled(ok)
    logged = record(
        status(Status.SUCCEEDED),
        (EventKind.NOTE, None, "log fetched", {"job_id": 3}),
    )
    marker = DeployEvent.from_new(
        NewEvent(
            logged.id,
            EventKind.NOTE,
            T0,
            detail="log",
            data={"job_id": 3},
            event_id=log_marker_id(logged.id, 3),
        ),
        next(_seq),
    )
    assert settled(DeployRecord.build(logged.deploy, [*logged.events, marker]))
    assert not settled(record(status(Status.FAILED)))
    assert settled(record(status(Status.FAILED), (EventKind.DIAGNOSIS, None, "x", {"cause": "x"})))
    assert settled(record(status(Status.CANCELLED)))
    assert settled(record(status(Status.SUCCEEDED), run_id=None))


# ---------------------------------------------------------------------------- confirmation


class Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _args(yes: bool = False) -> argparse.Namespace:
    return argparse.Namespace(yes=yes, command="rollback")


async def test_confirmation_needs_yes_or_a_terminal_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin("", tty=False))
    await _confirm(_args(yes=True), "Go?")
    with pytest.raises(UsageError, match="no terminal to confirm on"):
        await _confirm(_args(), "Go?")
    for answer, goes in (
        ("y\n", True),
        ("YES\n", True),
        ("n\n", False),
        ("\n", False),
        ("", False),
    ):
        monkeypatch.setattr(sys, "stdin", Stdin(answer, tty=True))
        if goes:
            await _confirm(_args(), "Go?")
        else:
            with pytest.raises(Failed, match="aborted"):
                await _confirm(_args(), "Go?")


# ---------------------------------------------------------------------------- parser


def test_readonly_works_before_or_after_mcp() -> None:
    parser = build_parser()
    assert parser.parse_args(["mcp"]).readonly is False
    assert parser.parse_args(["mcp", "--readonly"]).readonly is True
    assert parser.parse_args(["--readonly", "mcp"]).readonly is True


@pytest.mark.parametrize(
    "argv",
    [
        ["deploys", "acme/a", "production", "--limit", "0"],
        ["deploys", "acme/a"],
        ["cancel", "acme/a", "production"],
        ["logs"],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
