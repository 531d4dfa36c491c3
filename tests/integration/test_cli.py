"""`vmkit-tui deploys|rollback|cancel|logs` against the sandbox (real HTTP and SSH on 127.0.0.1).

Most commands run in this process through `main()` (the same parser and exit codes, without a
Python start-up per call); `--wait` follows the deploys the sandbox really runs. One test runs
the real `python -m vmkit_tui` without a terminal on stdin.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.cli_sandbox import REPO, Run, Sandbox, Terminal, sandbox
from vmkit_tui.__main__ import main
from vmkit_tui.actions.preflight import default_rollback_target
from vmkit_tui.domain.models import DurationBasis, EventKind, Status, Trigger
from vmkit_tui.frontends.cli import commands as cli
from vmkit_tui.frontends.cli.waiting import settled
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN
from vmkit_tui.sandbox.world.github import Run as WorldRun
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.spool import LogRecord, SpoolWriter

pytest_plugins = ["tests.integration.cli_fixtures"]

Cli = Callable[..., Run]
HOSTILE = "\x1b]52;c;aGVsbG8=\x07[/]\x1b[2J[@click=app.quit]x \x1b[31mred\x1b[0m"
TOKEN = "ghp_" + "A1b2C3d4E5" * 4


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`vmkit-tui --config <sandbox> ARGV` in this process; stdin is not a terminal unless
    `stdin` is given."""

    def run(sb: Sandbox, *argv: str, stdin: io.StringIO | None = None) -> Run:
        monkeypatch.setattr(sys, "stdin", stdin or io.StringIO(""))
        code = main(sb.args(*argv))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


# ---------------------------------------------------------------------------- deploys


def test_deploys_json_lists_the_environment_newest_first(shared: Sandbox, run_cli: Cli) -> None:
    done = run_cli(shared, "deploys", REPO, "production", "--json", "--limit", "5")
    assert done.code == 0, done.err
    rows = json.loads(done.out)
    expected = shared.records("production")[:5]
    assert [row["id"] for row in rows] == [record.id for record in expected]
    assert [row["status"] for row in rows] == [record.status.value for record in expected]
    assert {"sha", "triggered_by", "actor", "run_url", "duration_seconds", "diagnosis"} <= set(
        rows[0]
    )
    assert all(row["synced"] is True and row["sync_error"] is None for row in rows)
    assert all(row["repo"] == REPO and row["environment"] == "production" for row in rows)


def test_deploys_asks_github_about_its_environment_only(shared: Sandbox, run_cli: Cli) -> None:
    """One environment's sync need not catch up on every configured one (slow with many)."""
    start = shared.runtime.on_github(lambda github: len(github.requests))
    assert isinstance(start, int)
    done = run_cli(shared, "deploys", REPO, "staging", "--json", "--limit", "1")
    assert done.code == 0, done.err
    sent = shared.runtime.on_github(
        lambda github: [(r.path, r.query) for r in github.requests[start:]]
    )
    assert isinstance(sent, list)
    repos = {
        path.split("/")[2] + "/" + path.split("/")[3]
        for path, _ in sent
        if path.startswith("/repos/")
    }
    assert repos == {REPO}, sent  # the other configured repos were not asked about
    listings = [query for path, query in sent if path.endswith("/runs")]
    assert listings and all("branch=staging" in query for query in listings), listings


def test_deploys_exits_1_and_says_unsynced_when_github_refuses(
    shared: Sandbox, run_cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"  # the sandbox's config with a token GitHub refuses
    config.write_text(shared.config_path.read_text().replace(SANDBOX_TOKEN, "ghp_" + "0" * 36))
    config.chmod(0o600)
    done = run_cli(shared, "--config", str(config), "deploys", REPO, "staging", "--json")
    assert done.code == 1
    rows = json.loads(done.out)  # still the list, as recorded
    assert [row["id"] for row in rows] == [r.id for r in shared.records("staging")[:20]]
    assert all(row["synced"] is False and row["sync_error"] for row in rows)
    assert "showing the history as last recorded" in done.err
    assert "0" * 36 not in done.out + done.err
    table = run_cli(shared, "--config", str(config), "deploys", REPO, "staging")
    assert table.code == 1 and "last recorded" in table.err
    unsynced = run_cli(shared, "deploys", REPO, "staging", "--json", "--no-sync")
    assert unsynced.code == 0
    rows = json.loads(unsynced.out)
    assert all(row["synced"] is False and row["sync_error"] is None for row in rows)


def test_deploys_table_has_one_row_per_deploy(shared: Sandbox, run_cli: Cli) -> None:
    done = run_cli(shared, "deploys", REPO, "staging", "--no-sync", "--limit", "3")
    assert done.code == 0, done.err
    header, columns, *rows = done.out.splitlines()
    assert header == f"{REPO} / staging (3 deploys, newest first)"
    assert columns.split() == [
        "CREATED", "(UTC)", "ID", "STATUS", "SHA", "TRIGGER", "ACTOR", "TOOK", "TITLE"
    ]  # fmt: skip
    for row, record in zip(rows, shared.records("staging")[:3], strict=True):
        assert record.id in row and record.deploy.short_sha in row and record.status.value in row
        assert record.title[:40] in row  # the commit title
    for name in ("ID", "STATUS", "SHA", "TRIGGER", "ACTOR", "TOOK", "TITLE"):  # aligned
        at = columns.index(name)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), name


@pytest.mark.parametrize(
    "argv",
    [
        ("deploys", "acme/unknown", "production"),
        ("deploys", REPO, "nowhere"),
        ("rollback", REPO, "nowhere", "--yes"),
        ("logs", "not-an-id"),
        ("logs", "000000000000"),
    ],
)
def test_unknown_names_are_usage_errors(shared: Sandbox, run_cli: Cli, argv: tuple[str]) -> None:
    done = run_cli(shared, *argv)
    assert done.code == 2
    assert done.err.startswith("vmkit-tui: ") and len(done.err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- rollback


def test_rollback_without_a_terminal_or_yes_shows_the_preflight_and_refuses(
    shared: Sandbox,
) -> None:
    before = len(shared.records("staging"))
    target = default_rollback_target(shared.records("staging"))
    assert target is not None
    done = shared.subprocess("rollback", REPO, "staging")
    assert done.code == 2
    assert f"Target     {target.deploy.short_sha}" in done.out
    assert "! The current secrets and environment variables are used" in done.out
    assert "no terminal to confirm on: nothing was done. Add --yes" in done.err
    assert len(shared.records("staging")) == before


def test_rollback_refusals(shared: Sandbox, run_cli: Cli) -> None:
    live = shared.live("production")
    gone = shared.image_gone("production")
    other_env = shared.records("staging")[0]
    before = len(shared.records("production"))

    same = run_cli(shared, "rollback", REPO, "production", "--to", live.deploy.sha, "--yes")
    assert same.code == 1
    assert f"refused: Nothing to do: {live.deploy.short_sha} is already live" in same.err

    missing = run_cli(shared, "rollback", REPO, "production", "--to", gone.id, "--yes")
    assert missing.code == 1
    ref = f"ghcr.io/{REPO}:{gone.deploy.short_sha}"
    if gone.status is Status.SUCCEEDED:  # built once, so deleted since
        assert f"refused: The image {ref} is no longer in GHCR" in missing.err
        assert f"Image      {ref} is no longer in GHCR (deleted since" in missing.out
    else:
        assert "refused: There is no image for this commit in GHCR" in missing.err
        assert f"Image      no image for this commit in GHCR ({ref})" in missing.out

    for target, code in (("abc123", 2), ("000000000000", 2), (other_env.id, 2)):
        done = run_cli(shared, "rollback", REPO, "production", "--to", target, "--yes")
        assert done.code == code, (target, done.err)

    readonly = run_cli(shared, "--readonly", "rollback", REPO, "production", "--yes")
    assert readonly.code == 2 and "--readonly" in readonly.err
    assert len(shared.records("production")) == before


def test_rollback_to_a_short_sha_or_any_unique_prefix(shared: Sandbox, run_cli: Cli) -> None:
    live = shared.live("production")
    target = next(
        r
        for r in shared.records("production")
        if r.status is Status.SUCCEEDED and r.deploy.sha != live.deploy.sha
    )
    sha = target.deploy.sha
    for typed in (sha[:7], sha[:12], sha[:20]):  # 12 hex: no deploy has that id, so a SHA
        done = run_cli(shared, "rollback", REPO, "production", "--to", typed)
        assert done.code == 2, done.err  # no terminal: shown, not sent
        assert f"Target     {sha[:7]}  {sha}" in done.out
        assert "no terminal to confirm on" in done.err
    unknown = run_cli(shared, "rollback", REPO, "production", "--to", "1234567", "--yes")
    assert unknown.code == 2
    assert "No deploy of acme/my-fastapi-app production in the history is of a commit" in (
        unknown.err
    )


def test_rollback_asks_and_only_yes_goes_then_logs_follow_to_the_end(
    fresh: Sandbox, run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = default_rollback_target(fresh.records("staging"))
    assert target is not None
    before = {record.id for record in fresh.records("staging")}

    no = run_cli(fresh, "rollback", REPO, "staging", stdin=Terminal("n"))
    assert no.code == 1 and "aborted: nothing was done" in no.err
    assert {record.id for record in fresh.records("staging")} == before

    yes = run_cli(fresh, "rollback", REPO, "staging", stdin=Terminal("y"))
    assert yes.code == 0, yes.err
    assert f"Roll back staging to {target.deploy.short_sha}? [y/N]" in yes.out
    (new,) = [record for record in fresh.records("staging") if record.id not in before]
    assert new.deploy.triggered_by is Trigger.MANUAL
    assert new.deploy.rollback_of == target.id and new.deploy.sha == target.deploy.sha
    assert f"Deploy {new.id} is running. Follow it: vmkit-tui logs {new.id} --follow" in yes.out

    monkeypatch.setattr(cli, "FOLLOW_AFTER_FINAL", 1.0)
    follow = run_cli(fresh, "logs", new.id, "--follow")
    assert follow.code == 0, follow.err
    assert f"deploy {new.id} succeeded" in follow.err
    sources = {line.split("[", 1)[0].split()[-1] for line in follow.out.splitlines()}
    assert {"github", "kamal-proxy"} <= sources
    assert fresh.history.record(new.id).status is Status.SUCCEEDED


def test_rollback_wait_ends_succeeded_with_exit_0(fresh: Sandbox, run_cli: Cli) -> None:
    done = run_cli(fresh, "rollback", REPO, "production", "--yes", "--wait", "--json")
    assert done.code == 0, done.err
    record = json.loads(done.out)
    assert record["status"] == "succeeded" and record["triggered_by"] == "manual"
    assert f"{record['id']} running" in done.err and f"{record['id']} succeeded" in done.err
    stored = fresh.history.record(record["id"])
    assert stored.status is Status.SUCCEEDED
    assert settled(stored)  # --wait ended once the run's log was in, not before
    # ... and in means written to the spool, not only claimed: the job's lines are there.
    logs = run_cli(fresh, "logs", record["id"], "--source", "github")
    assert logs.code == 0, logs.err
    lines = logs.out.splitlines()
    assert lines and all(" github[" in line for line in lines), logs.err
    assert any("kamal" in line.lower() for line in lines)

    # The live deploy is now a rollback: the default goes further back, never forward.
    records = fresh.records("production")  # newest first
    live_sha = stored.deploy.sha
    first_of_live = max(i for i, r in enumerate(records) if r.deploy.sha == live_sha)
    older = next(r for r in records[first_of_live + 1 :] if r.status is Status.SUCCEEDED)
    newer = {r.deploy.sha for r in records[1:first_of_live] if r.status is Status.SUCCEEDED}
    assert newer - {live_sha}, "the sandbox has a newer succeeded version to avoid"
    again = run_cli(fresh, "rollback", REPO, "production")
    assert again.code == 2  # no terminal: shown, not sent
    assert f"Target     {older.deploy.short_sha}  {older.deploy.sha}" in again.out
    assert "this rolls forward" not in again.out


def test_a_rollback_overlapping_a_push_deploy_gets_its_own_first_healthy(
    fresh: Sandbox, run_cli: Cli
) -> None:
    push = fresh.world(lambda world: world.push(REPO, "staging", "success"))
    assert isinstance(push, WorldRun)

    async def running(world: World) -> None:  # a rollback sent earlier would replace it
        while world.run_status(push).status != "in_progress":
            await world.changed()

    fresh.world(running)
    done = run_cli(fresh, "rollback", REPO, "staging", "--yes", "--wait", "--json")
    assert done.code == 0, done.err
    rollback = fresh.history.record(json.loads(done.out)["id"])
    pushed = next(r for r in fresh.records("staging") if r.run_id == push.id)
    truth = fresh.world(lambda world: {r.id: world.first_healthy_at(r) for r in world.runs(REPO)})
    assert isinstance(truth, dict) and rollback.run_id is not None
    assert pushed.first_healthy_at is not None and rollback.first_healthy_at is not None
    assert pushed.first_healthy_at == truth[pushed.run_id]  # each from its own container
    assert rollback.first_healthy_at == truth[rollback.run_id] > pushed.first_healthy_at
    assert rollback.duration is not None and rollback.duration[1] is DurationBasis.FIRST_HEALTHY


def test_rollback_wait_of_a_failing_deploy_exits_1_with_its_cause(
    fresh: Sandbox, run_cli: Cli
) -> None:
    fresh.set_deploy_host_offline("production")
    done = run_cli(fresh, "rollback", REPO, "production", "--yes", "--wait")
    assert done.code == 1
    new = fresh.records("production")[0]
    assert new.status is Status.FAILED and new.diagnosis is not None
    assert f"{new.id} failed" in done.out
    assert f"cause: {new.diagnosis.cause}" in done.out
    assert f"vmkit-tui: deploy {new.id} ended failed" in done.err


# ---------------------------------------------------------------------------- cancel


def test_cancel_wait_ends_cancelled_and_a_finished_deploy_is_refused(
    tmp_path: Path, run_cli: Cli
) -> None:
    # A slower clock: the cancel lands during the run's setup steps, before Kamal starts.
    with sandbox(tmp_path / "sandbox", speed=5) as sb:
        started = run_cli(sb, "rollback", REPO, "staging", "--yes", "--json")
        assert started.code == 0, started.err
        deploy_id = json.loads(started.out)["id"]

        wrong_env = run_cli(sb, "cancel", REPO, "production", deploy_id, "--yes")
        assert wrong_env.code == 2 and "is on" in wrong_env.err

        done = run_cli(sb, "cancel", REPO, "staging", deploy_id, "--yes", "--wait")
        assert done.code == 0, done.out + done.err
        assert "Cancel requested: GitHub stops run" in done.out
        assert f"{deploy_id} cancelled" in done.out
        record = sb.history.record(deploy_id)
        assert record.status is Status.CANCELLED
        assert any(e.kind is EventKind.CANCEL_REQUESTED for e in record.events)

        again = run_cli(sb, "cancel", REPO, "staging", deploy_id, "--yes")
        assert again.code == 1
        assert "already finished (cancelled): nothing to cancel" in again.err


# ---------------------------------------------------------------------------- logs


def test_logs_print_sanitised_lines_and_filter_by_source(shared: Sandbox, run_cli: Cli) -> None:
    record = shared.records("staging")[-1]
    fetched = run_cli(shared, "logs", record.id)  # the first look fetches its job logs
    assert fetched.code == 0, fetched.err
    before = len(fetched.out.splitlines())
    at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    with SpoolWriter.for_deploy(shared.data_dir, record.id) as writer:
        writer.append_many(
            [
                LogRecord(at, "deploy", "github", f"step one {HOSTILE}"),
                LogRecord(at, "127.0.0.1:2222", "kamal-proxy", f"token {TOKEN}"),
                LogRecord(at, "deploy", "github", "x" * 1_000_000),
            ]
        )
    done = run_cli(shared, "logs", record.id)
    assert done.code == 0, done.err
    lines = done.out.splitlines()[before:]
    assert len(lines) == 3
    assert "\x1b" not in done.out and "\x07" not in done.out
    assert lines[0] == "2026-05-01 10:00:00Z github[deploy] step one [/][@click=app.quit]x red"
    assert TOKEN not in done.out and "token [REDACTED]" in lines[1]
    assert lines[2].endswith("x" * 1000)

    proxy = run_cli(shared, "logs", record.id, "--source", "kamal-proxy")
    assert proxy.code == 0 and len(proxy.out.splitlines()) == 1
    assert proxy.out.startswith("2026-05-01 10:00:00Z kamal-proxy[127.0.0.1:2222]")

    typo = run_cli(shared, "logs", record.id, "--source", "kamalproxy")
    assert typo.code == 2 and typo.out == ""
    assert typo.err == (
        "vmkit-tui: Unknown log source 'kamalproxy': one of github, kamal, kamal-proxy, "
        "vmkit-agent, app.\n"
    )

    none = run_cli(shared, "logs", record.id, "--source", "app")
    assert none.code == 0 and none.out == ""
    assert f"none of the {before + 3} log lines" in none.err


def test_a_first_logs_of_a_failed_deploy_from_the_past_shows_its_log_and_diagnosis(
    fresh: Sandbox,
) -> None:
    failed = next(  # recorded by the first start without its logs
        r
        for env in ("production", "staging")
        for r in fresh.records(env)
        if r.status is Status.FAILED and r.run_id and r.diagnosis is None
    )
    assert not (fresh.data_dir / "logs" / f"{failed.id}.log").exists()
    first = fresh.subprocess("logs", failed.id)
    assert first.code == 0, first.err
    assert "no log lines recorded" not in first.err
    lines = first.out.splitlines()
    assert lines and all(" github[" in line for line in lines)
    diagnosis = fresh.history.record(failed.id).diagnosis
    assert diagnosis is not None
    assert f"deploy {failed.id} failed: {diagnosis.cause}" in first.err
    assert diagnosis.line in lines[diagnosis.line_number or 0]
    again = fresh.subprocess("logs", failed.id)  # fetched once: the same lines again
    assert again.code == 0 and again.out == first.out
