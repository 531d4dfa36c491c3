"""Preflight logic from fixed inputs: the default rollback target, the refusals (and what
`force` overrides), and the warnings a user reads before confirming."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.actions.preflight import (
    MigrationCheck,
    Preflight,
    TargetInfo,
    default_rollback_target,
    live_deploy,
)
from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
)
from vmkit_tui.sources.github.results import ImageCheck, ImageState

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
IMAGE = "ghcr.io/acme/storefront"
PRESENT = ImageCheck(ImageState.PRESENT)
NO_MIGRATIONS = MigrationCheck(compared="ahead")
_seq = itertools.count(1)


def sha(n: int) -> str:
    return f"{n:040x}"


def record(n: int, status: Status | None, *, commit: int | None = None) -> DeployRecord:
    """Deploy `n` (created n minutes after T0) of commit `commit` (default: n), ending `status`."""
    deploy = Deploy(
        id=new_deploy_id(),
        repo="acme/storefront",
        environment="production",
        sha=sha(n if commit is None else commit),
        triggered_by=Trigger.PUSH,
        actor="priya-r",
        created_at=T0 + timedelta(minutes=n),
    )
    news = [NewEvent(deploy.id, EventKind.CREATED, deploy.created_at, data={"title": f"c{n}"})]
    if status is not None:
        news.append(NewEvent(deploy.id, EventKind.STATUS, deploy.created_at, status=status))
    return DeployRecord.build(deploy, [DeployEvent.from_new(e, next(_seq)) for e in news])


def preflight(
    target: TargetInfo,
    live: DeployRecord | None,
    *,
    image: ImageCheck = PRESENT,
    migrations: MigrationCheck = NO_MIGRATIONS,
    strategy: RollbackStrategy = RollbackStrategy.GITHUB,
    active: DeployRecord | None = None,
) -> Preflight:
    return Preflight(
        repo="acme/storefront",
        environment="production",
        strategy=strategy,
        image=IMAGE,
        target=target,
        live=live,
        image_check=image,
        migrations=migrations,
        checked_at=T0 + timedelta(hours=2),
        active=active,
    )


def has(warnings: tuple[str, ...], text: str) -> bool:
    return any(text in warning for warning in warnings)


# ------------------------------------------------------------------ default target


def test_default_target_is_the_last_success_before_the_live_deploy() -> None:
    older_good = record(1, Status.SUCCEEDED)
    failed = record(2, Status.FAILED)
    previous_good = record(3, Status.SUCCEEDED)
    cancelled = record(4, Status.CANCELLED)
    live = record(5, Status.SUCCEEDED)
    broken = record(6, Status.FAILED)  # the deploy that broke things did not go live
    records = [older_good, failed, previous_good, cancelled, live, broken]
    assert live_deploy(records) is live
    assert default_rollback_target(records) is previous_good
    assert default_rollback_target(list(reversed(records))) is previous_good  # any order


def test_default_target_skips_redeploys_of_the_live_sha() -> None:
    original = record(1, Status.SUCCEEDED)
    same_as_live = record(2, Status.SUCCEEDED, commit=3)
    live = record(3, Status.SUCCEEDED)
    assert default_rollback_target([original, same_as_live, live]) is original


@pytest.mark.parametrize(
    "statuses",
    [
        [],  # no history
        [Status.FAILED, Status.FAILED],  # nothing ever succeeded: nothing is live
        [Status.SUCCEEDED],  # only the live deploy
        [Status.FAILED, Status.SUCCEEDED, Status.RUNNING],  # nothing succeeded before live
    ],
)
def test_no_default_target(statuses: list[Status]) -> None:
    records = [record(n, status) for n, status in enumerate(statuses)]
    assert default_rollback_target(records) is None


# ------------------------------------------------------------------ refusals


def test_a_clean_rollback_has_no_refusal_and_only_the_standing_warning() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    check = preflight(TargetInfo(target.deploy.sha, target, "c3", True), live)
    assert check.blockers == ()
    assert check.refusal() is None
    assert check.live_sha == live.deploy.sha
    assert check.target_age == timedelta(hours=2) - timedelta(minutes=3)
    assert check.target.deployed_by == "priya-r" and check.target.status is Status.SUCCEEDED
    assert check.warnings == (
        "The current secrets and environment variables are used, not the ones "
        f"{target.deploy.short_sha} ran with.",
    )


def test_nothing_to_do_when_the_target_is_live_and_force_does_not_help() -> None:
    live = record(5, Status.SUCCEEDED)
    check = preflight(TargetInfo(live.deploy.sha, live), live)
    refusal = check.refusal()
    assert refusal is not None and refusal.startswith("Nothing to do")
    assert check.refusal(force=True) == refusal


def test_an_image_gone_from_ghcr_is_refused_unless_forced() -> None:
    live, target = record(5, Status.SUCCEEDED), record(1, Status.SUCCEEDED)
    check = preflight(
        TargetInfo(target.deploy.sha, target, "c1", True),
        live,
        image=ImageCheck(ImageState.MISSING),
    )
    refusal = check.refusal()
    assert refusal is not None
    assert f"{IMAGE}:{target.deploy.short_sha} is no longer in GHCR" in refusal
    assert "kamal-ssh" not in refusal
    assert check.refusal(force=True) is None
    kamal = replace(check, strategy=RollbackStrategy.KAMAL_SSH).refusal()
    assert kamal is not None and "kept on the hosts" in kamal


def test_a_commit_github_does_not_have_is_refused_even_forced() -> None:
    live = record(5, Status.SUCCEEDED)
    check = preflight(TargetInfo(sha(99), None, "", commit_found=False), live)
    refusal = check.refusal(force=True)
    assert refusal == f"acme/storefront has no commit {sha(99)}."


def test_an_unverifiable_commit_blocks_a_bare_sha_deploy_only() -> None:
    live = record(5, Status.SUCCEEDED)
    target = TargetInfo(sha(99), None, "", None, "GitHub is unreachable")
    assert preflight(target, live).refusal() is None  # a rollback to a known deploy: fine
    strict = replace(preflight(target, live), require_commit=True)
    refusal = strict.refusal()
    assert refusal is not None and "GitHub is unreachable." in refusal
    assert strict.refusal(force=True) is None


# ------------------------------------------------------------------ warnings


def test_a_target_that_did_not_succeed_is_warned_about() -> None:
    live = record(5, Status.SUCCEEDED)
    for status, words in ((Status.FAILED, "ended failed"), (Status.RUNNING, "is still running")):
        target = record(4, status)
        warnings = preflight(TargetInfo(target.deploy.sha, target), live).warnings
        assert has(warnings, f"The deploy of {target.deploy.short_sha} you picked {words}")
    bare = preflight(TargetInfo(sha(77)), live).warnings  # a bare SHA has no status to judge
    assert not has(bare, "you picked")


def test_migrations_between_target_and_live_warn_with_the_remedy() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    files = tuple(f"db/migrate/2026050112000{n}_change_{n}.rb" for n in range(7))
    check = preflight(
        TargetInfo(target.deploy.sha, target),
        live,
        migrations=MigrationCheck(files=files, compared="ahead"),
    )
    (warning,) = [w for w in check.warnings if "migration" in w]
    assert warning.startswith(f"7 migration file(s) changed between {target.deploy.short_sha}")
    assert files[4] in warning and files[5] not in warning and "and 2 more" in warning
    assert "never the database" in warning
    assert "down-migration by hand" in warning and "additive" in warning


def test_no_migration_warning_without_migrations() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    warnings = preflight(TargetInfo(target.deploy.sha, target), live).warnings
    assert not has(warnings, "migration")
    assert not has(warnings, "never the database")


def test_checks_that_could_not_be_made_say_why() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    check = preflight(
        TargetInfo(target.deploy.sha, target),
        live,
        image=ImageCheck(ImageState.CANNOT_CHECK, "the token cannot read packages"),
        migrations=MigrationCheck(cannot_check="GitHub's compare failed: 502"),
    )
    assert check.refusal() is None  # cannot check is a warning, never a refusal
    assert has(check.warnings, "Cannot check for migrations: GitHub's compare failed: 502.")
    assert has(check.warnings, "never the database")  # the remedy is still said
    assert has(check.warnings, "the token cannot read packages. If it is gone")


def test_truncated_diverged_and_forward_comparisons_are_explained() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    info = TargetInfo(target.deploy.sha, target)
    truncated = preflight(info, live, migrations=MigrationCheck(truncated=True, compared="ahead"))
    assert has(truncated.warnings, "only the first 300 changed files")
    diverged = preflight(info, live, migrations=MigrationCheck(compared="diverged"))
    assert has(diverged.warnings, "is not an ancestor of")
    forward = preflight(info, live, migrations=MigrationCheck(compared="behind"))
    assert has(forward.warnings, "this rolls forward")


def test_a_deploy_in_progress_is_mentioned() -> None:
    live, target = record(5, Status.SUCCEEDED), record(3, Status.SUCCEEDED)
    running = record(6, Status.RUNNING)
    warnings = preflight(TargetInfo(target.deploy.sha, target), live, active=running).warnings
    assert has(warnings, f"Deploy {running.id} ({running.deploy.short_sha}) is running")
