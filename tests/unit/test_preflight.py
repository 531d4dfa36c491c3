"""Preflight logic from fixed inputs: the default rollback target, the refusals (and what
`force` overrides), and the warnings a user reads before confirming."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.actions.errors import ActionRefused, UnknownTarget
from vmkit_tui.actions.gather import resolve_target
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

REPO, ENV = "acme/storefront", "production"
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


def test_default_target_never_rolls_forward_from_a_live_rollback() -> None:
    """A ok, B ok, C ok but broken, rolled back to B: the live deploy is B again, and the
    default goes on to A (older than B's first deploy), not to C (newer: a roll forward)."""
    a = record(1, Status.SUCCEEDED)
    b = record(2, Status.SUCCEEDED)
    c = record(3, Status.SUCCEEDED)
    back_to_b = record(4, Status.SUCCEEDED, commit=2)
    records = [a, b, c, back_to_b]
    assert live_deploy(records) is back_to_b
    assert default_rollback_target(records) is a
    assert resolve_target(REPO, ENV, records, back_to_b, None) == (
        a,
        a.deploy.sha,
    )


def test_no_default_target_when_the_live_sha_is_the_oldest_success() -> None:
    """A, B, C, rolled back to A: everything else that succeeded is newer, so there is no
    default (rolling forward only when named)."""
    a, b, c = (record(n, Status.SUCCEEDED) for n in (1, 2, 3))
    back_to_a = record(4, Status.SUCCEEDED, commit=1)
    records = [a, b, c, back_to_a]
    assert default_rollback_target(records) is None
    with pytest.raises(ActionRefused, match="never goes forward"):
        resolve_target(REPO, ENV, records, back_to_a, None)
    assert resolve_target(REPO, ENV, records, back_to_a, sha(3)) == (
        c,
        sha(3),
    )


def with_sha(n: int, commit: str) -> DeployRecord:
    """Deploy `n` of the commit `commit` (a full SHA), succeeded."""
    base = record(n, Status.SUCCEEDED)
    return replace(base, deploy=replace(base.deploy, sha=commit))


def test_a_sha_prefix_names_the_one_commit_it_starts() -> None:
    first = with_sha(1, "aafb4291" + "1" * 32)
    second = with_sha(2, "aafb4292" + "2" * 32)
    live = with_sha(3, "c" * 40)
    records = [first, second, live]
    for typed in ("aafb4291", "aafb42911", first.deploy.sha):
        assert resolve_target(REPO, ENV, records, live, typed) == (first, first.deploy.sha)
    with pytest.raises(UnknownTarget, match=r"start of 2 commits .*\(aafb4291, aafb4292\)"):
        resolve_target(REPO, ENV, records, live, "aafb429")
    with pytest.raises(UnknownTarget, match=r"No deploy .* starting with 1234567"):
        resolve_target(REPO, ENV, records, live, "1234567")
    beyond = "d" * 40  # a full SHA beyond the history is taken as it is
    assert resolve_target(REPO, ENV, records, live, beyond) == (None, beyond)
    for malformed in ("aafb42", "AAFB429", "aafb429 "):
        with pytest.raises(UnknownTarget, match="Not a deploy id"):
            resolve_target(REPO, ENV, records, live, malformed)


def test_twelve_hex_is_a_deploy_id_first_then_a_sha_prefix() -> None:
    """Deploy ids are 12 hex too: the id of a deploy in this environment's history names that
    deploy, even when a deployed SHA starts with it too; other 12 hex are a SHA prefix."""
    target = with_sha(1, "ab" * 20)
    live = with_sha(2, "c" * 40)
    clash = with_sha(3, target.id + "0" * 28)  # a commit that starts with the target's id
    records = [target, live, clash]
    assert resolve_target(REPO, ENV, records, live, target.id) == (target, target.deploy.sha)
    assert resolve_target(REPO, ENV, records, live, "ab" * 6) == (target, target.deploy.sha)
    assert resolve_target(REPO, ENV, records, live, target.id + "0") == (clash, clash.deploy.sha)


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


def test_a_missing_image_says_whether_it_was_deleted_or_never_there() -> None:
    live, missing = record(5, Status.SUCCEEDED), ImageCheck(ImageState.MISSING)
    failed = record(3, Status.FAILED)  # its build may never have pushed an image
    never = preflight(TargetInfo(failed.deploy.sha, failed, "c3", True), live, image=missing)
    assert (
        never.image_gone == f"no image for this commit in GHCR ({IMAGE}:{failed.deploy.short_sha})"
    )
    refusal = never.refusal()
    assert refusal is not None and refusal.startswith("There is no image for this commit in GHCR")
    bare = preflight(TargetInfo(sha(98), None, "", True), live, image=missing)
    assert bare.image_gone.startswith("no image for this commit in GHCR")
    # A commit GitHub does not have: that is the refusal, not a missing image.
    nowhere = preflight(TargetInfo(sha(99), None, "", False), live, image=missing)
    assert [b.message for b in nowhere.blockers] == [f"acme/storefront has no commit {sha(99)}."]


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
