"""The simulated world: seeded content, run timelines, scenarios, cancel, rollback, compare."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from tests.world_fixtures import START
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.scenarios import SCENARIOS
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.world_fixtures"]
REPO = "acme/my-fastapi-app"


def finish(world: World, clock: ManualClock, run: Run, limit: int = 1200) -> None:
    """Advance simulated time until the run has completed."""
    for _ in range(limit):
        if world.run_status(run).status == "completed":
            return
        clock.advance(1)
    raise AssertionError(f"run {run.id} did not complete in {limit} simulated seconds")


def advance_until(clock: ManualClock, moment: datetime) -> None:
    clock.set(max(clock.now(), moment))


def log_of(world: World, run: Run, job_name: str) -> str:
    job = next(job for job in world.jobs(run) if job.name == job_name)
    text = world.job_log(job.id)
    assert text is not None
    return text


def failing_step(world: World, run: Run) -> tuple[str, str]:
    for job in world.jobs(run):
        for step in job.steps:
            if step.conclusion == "failure":
                return job.name, step.name
    raise AssertionError("no failing step")


def dump(world: World) -> str:
    parts = []
    for run in world.runs():
        parts.append(
            repr((run.id, run.display_title, run.sha, world.run_status(run), world.jobs(run)))
        )
        parts.extend(world.job_log(job.id) or "" for job in world.jobs(run))
    for vm in world.vms():
        parts.extend(
            repr(world.vm_lines(vm.name, source))
            for source in ("kamal-proxy", "vmkit-agent", "app")
        )
    for repo in world.repos.values():
        parts.append(repr((repo.id, repo.commits, repo.branches, sorted(world.image_tags(repo)))))
    parts.append(repr(world.environments()))
    return "\n".join(parts)


# -- seeded content ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_world_byte_for_byte() -> None:
    first = dump(World.seeded(7, ManualClock(START), profile="small"))
    assert first == dump(World.seeded(7, ManualClock(START), profile="small"))
    assert first != dump(World.seeded(8, ManualClock(START), profile="small"))


def test_demo_profile_has_every_outcome_in_every_environment() -> None:
    world = World.seeded(7, ManualClock(START), profile="demo")
    assert sorted(world.repos) == ["acme/billing-api", "acme/my-fastapi-app", "acme/storefront"]
    environments = world.environments()
    assert len(environments) >= 7
    for env in environments:
        runs = [run for run in world.runs(env.repo) if run.environment == env.name]
        assert 20 <= len(runs) <= 70, (env.repo, env.name, len(runs))
        outcomes = Counter(run.scenario for run in runs)
        for scenario in SCENARIOS:  # every scenario the seeding knows
            assert outcomes[scenario] >= 1, (env.name, scenario)
        conclusions = Counter(world.run_status(run).conclusion for run in runs)
        assert conclusions["cancelled"] >= 1
        assert 1 <= len(env.vm_names) <= 2
        assert env.live_sha is not None
    rollbacks = [run for run in world.runs() if run.is_rollback]
    assert rollbacks and all(
        run.request_id and run.request_id in run.display_title for run in rollbacks
    )
    assert any(run.scenario == "image_gone" for run in rollbacks)
    for repo in world.repos.values():
        migration_dir = repo.stack.migration_dir
        assert any(
            name.startswith(migration_dir) for commit in repo.commits for name in commit.files
        )
        shas = {commit.sha for commit in repo.commits}
        assert all(len(sha) == 40 for sha in shas)
    # the demo opens with a deploy under way and a deploy lock still held somewhere
    assert any(world.run_status(run).status == "in_progress" for run in world.runs())
    assert any(env.lock_holder for env in environments)


def test_small_profile_is_small(world: World) -> None:
    assert list(world.repos) == [REPO]
    assert 8 <= len(world.runs()) <= 20
    assert all(world.run_status(run).status == "completed" for run in world.runs())


# -- a run over time ----------------------------------------------------------------------------


def test_run_moves_queued_in_progress_completed_over_simulated_time(
    world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    assert world.runs()[0] is run
    assert world.run_status(run).status == "queued"
    assert [job.name for job in world.jobs(run)] == ["build"]
    assert world.jobs(run)[0].status == "queued" and world.jobs(run)[0].steps == ()
    seen = []
    for _ in range(900):
        status = world.run_status(run).status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "completed":
            break
        clock.advance(1)
    assert seen == ["queued", "in_progress", "completed"]
    state = world.run_status(run)
    assert state.conclusion == "success"
    assert state.run_started_at == run.created_at <= state.updated_at <= clock.now()
    jobs = world.jobs(run)
    assert [job.name for job in jobs] == ["build", "deploy"]
    assert all(job.status == "completed" and job.conclusion == "success" for job in jobs)
    steps = [step.name for step in jobs[0].steps]
    assert steps[:5] == [
        "Set up job",
        "Run actions/checkout@v4",
        "Log in to GHCR",
        "Build image with buildpacks",
        "Push image to GHCR",
    ]
    numbers = [step.number for step in jobs[1].steps]
    assert numbers == sorted(numbers) and numbers[-1] > len(numbers)  # post steps after a gap
    assert world.environment(REPO, "staging").live_sha == run.sha
    assert run.sha in world.image_tags(REPO)


def test_steps_show_progress_and_the_log_appears_only_when_the_job_completes(
    world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    clock.advance(30)
    build = world.jobs(run)[0]
    assert build.status == "in_progress"
    statuses = [step.status for step in build.steps]
    assert "in_progress" in statuses and statuses[0] == "completed" and statuses[-1] == "queued"
    assert world.job_log(build.id) is None
    finish(world, clock, run)
    text = world.job_log(build.id)
    assert text is not None and text.startswith("\ufeff")
    first = text[1:].splitlines()[0]
    stamp, _, rest = first.partition(" ")
    assert len(stamp) == len("2026-05-01T12:00:01.1234567Z") and stamp.endswith("Z")
    assert rest.startswith("Current runner version")
    assert "##[group]Run actions/checkout@v4" in text and "##[endgroup]" in text
    assert f"Successfully built image '{world.repo(REPO).image}:{run.sha}'" in text
    deploy_log = log_of(world, run, "deploy")
    assert f"kamal deploy --skip-push --version {run.sha}" in deploy_log
    assert "  Finished all in " in deploy_log
    assert "Running docker exec kamal-proxy kamal-proxy deploy" in deploy_log


# -- scenarios ------------------------------------------------------------------------------------

SCENARIO_TELLS = {
    # scenario: (job, failing step, tell-tale line in the job log)
    "buildpack_no_procfile": (
        "build",
        "Build image with buildpacks",
        "ERROR: No buildpack groups passed detection.",
    ),
    "ghcr_push_denied": ("build", "Push image to GHCR", "denied: permission_denied: write_package"),
    "health_timeout": (
        "deploy",
        "Deploy with Kamal",
        "docker stderr: Error: target failed to become healthy within configured timeout (30s)",
    ),
    "ssh_unreachable": ("deploy", "Deploy with Kamal", "ERROR (Net::SSH::ConnectionTimeout)"),
    "ssh_auth_failed": ("deploy", "Deploy with Kamal", "ERROR (Net::SSH::AuthenticationFailed)"),
    "lock_held": ("deploy", "Deploy with Kamal", "Deploy lock already in place!"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIO_TELLS))
def test_each_scenario_fails_at_its_step_with_its_tell_tale_line(
    world: World, clock: ManualClock, scenario: str
) -> None:
    env = world.environment(REPO, "production")
    before = env.live_sha
    run = world.push(REPO, "production", scenario=scenario)
    finish(world, clock, run)
    job, step, tell = SCENARIO_TELLS[scenario]
    assert world.run_status(run).conclusion == "failure"
    assert run.scenario == scenario
    assert failing_step(world, run) == (job, step)
    text = log_of(world, run, job)
    assert tell in text
    assert "##[error]Process completed with exit code 1." in text
    after = world.environment(REPO, "production")
    assert after.live_sha == before  # nothing went live
    app = world.vm_lines(env.deploy_host, "app")
    reached_vm = any(line.container.endswith(run.sha) for line in app)
    assert reached_vm == (scenario == "health_timeout")
    if job == "build":
        assert [j.conclusion for j in world.jobs(run)] == ["failure", "skipped"]


def test_health_timeout_shows_the_wrong_bind_address_on_the_vm_and_in_the_log(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "staging")
    run = world.push(REPO, "staging", scenario="health_timeout")
    finish(world, clock, run)
    app = [
        line.text for line in world.vm_lines(env.deploy_host, "app") if line.at >= run.created_at
    ]
    assert any("Uvicorn running on http://127.0.0.1:8000" in line for line in app)
    proxy = [
        line.text
        for line in world.vm_lines(env.deploy_host, "kamal-proxy")
        if line.at >= run.created_at
    ]
    failures = [line for line in proxy if '"msg":"Healthcheck failed"' in line]
    assert len(failures) >= 29  # one a second for the 30 s deploy timeout
    assert "connect: connection refused" in failures[0]
    # kamal-proxy logs no verdict: the timeout is `kamal-proxy deploy`'s error, relayed by Kamal.
    assert not any("failed to become healthy" in line for line in proxy)
    assert not any('"msg":"Deployed"' in line for line in proxy)
    deploy_log = log_of(world, run, "deploy")
    assert "Uvicorn running on http://127.0.0.1:8000" in deploy_log
    assert (
        "docker stderr: Error: target failed to become healthy within configured timeout (30s)"
        in deploy_log
    )
    # the failed container is stopped and becomes a (bad) rollback candidate, not live
    assert run.sha in world.environment(REPO, "staging").retained


def test_a_held_lock_or_an_offline_vm_decides_the_outcome(world: World, clock: ManualClock) -> None:
    env = world.environment(REPO, "staging")
    locked = world.push(REPO, "staging", scenario="lock_held")
    finish(world, clock, locked)
    holder = world.environment(REPO, "staging").lock_holder
    assert holder is not None and holder in log_of(world, locked, "deploy")
    blocked = world.push(REPO, "staging")  # asked for success; the lock is still held
    assert blocked.scenario == "lock_held"
    finish(world, clock, blocked)
    assert world.run_status(blocked).conclusion == "failure"
    world.set_vm_offline(env.deploy_host, True)
    assert world.vm(env.deploy_host).offline
    offline = world.push(REPO, "staging")
    assert offline.scenario == "ssh_unreachable"
    finish(world, clock, offline)
    world.set_vm_offline(env.deploy_host, False)


def test_ssh_scenarios_take_the_vm_off_line_for_the_run_only(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "production")
    run = world.push(REPO, "production", scenario="ssh_unreachable")
    clock.advance(1)
    assert world.vm(env.deploy_host).offline
    finish(world, clock, run)
    clock.advance(600)
    assert not world.vm(env.deploy_host).offline
    refused = world.push(REPO, "production", scenario="ssh_auth_failed")
    clock.advance(1)
    assert world.vm(env.deploy_host).auth_refused and not world.vm(env.deploy_host).offline
    finish(world, clock, refused)


# -- cancel -----------------------------------------------------------------------------------------


def test_cancel_before_the_swap_ends_the_run_cancelled(world: World, clock: ManualClock) -> None:
    before = world.environment(REPO, "staging").live_sha
    run = world.push(REPO, "staging")
    clock.advance(60)  # building
    assert world.cancel(run)
    assert run.cancel_requested_at == clock.now()
    assert world.run_status(run).status == "in_progress"  # stops at the step boundary, not at once
    finish(world, clock, run, limit=30)
    assert world.run_status(run).conclusion == "cancelled"
    build = world.jobs(run)[0]
    assert build.conclusion == "cancelled"
    assert any(step.conclusion == "cancelled" for step in build.steps)
    assert "##[error]The operation was canceled." in (world.job_log(build.id) or "")
    assert [job.name for job in world.jobs(run)] == ["build"]  # the deploy job never existed
    assert run.sha not in world.image_tags(REPO)
    assert world.environment(REPO, "staging").live_sha == before
    assert not world.cancel(run)  # completed: nothing to cancel


def test_cancel_during_kamal_before_the_swap_stops_the_vm_side_too(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "staging")
    run = world.push(REPO, "staging")
    plan = world._plans[run.id]
    deploy = plan.jobs[-1]
    assert deploy.kamal_start is not None and plan.swap_at is not None
    advance_until(clock, deploy.kamal_start + timedelta(seconds=2))  # pulling the image
    assert world.cancel(run)
    finish(world, clock, run, limit=30)
    assert world.run_status(run).conclusion == "cancelled"
    clock.advance(300)
    proxy = [
        line.text
        for line in world.vm_lines(env.deploy_host, "kamal-proxy")
        if line.at >= run.created_at
    ]
    assert not any('"msg":"Deploying"' in line for line in proxy)
    assert world.environment(REPO, "staging").live_sha != run.sha


@pytest.mark.parametrize(
    ("scenario", "conclusion"), [("success", "success"), ("health_timeout", "failure")]
)
def test_cancel_after_the_swap_lets_the_run_finish_on_its_own(
    world: World, clock: ManualClock, scenario: str, conclusion: str
) -> None:
    run = world.push(REPO, "staging", scenario=scenario)
    swap = world._plans[run.id].swap_at
    assert swap is not None
    advance_until(clock, swap + timedelta(seconds=0.5))
    assert world.cancel(run)  # accepted (202), but kamal-proxy is already switching
    finish(world, clock, run)
    assert world.run_status(run).conclusion == conclusion
    assert (world.environment(REPO, "staging").live_sha == run.sha) == (conclusion == "success")


def test_force_cancel_after_the_swap_stops_the_run_but_not_the_swap(
    world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    swap = world._plans[run.id].swap_at
    assert swap is not None
    advance_until(clock, swap + timedelta(seconds=0.2))
    assert world.cancel(run, force=True)
    assert run.force_cancelled
    finish(world, clock, run, limit=10)
    assert world.run_status(run).conclusion == "cancelled"
    clock.advance(60)
    assert world.environment(REPO, "staging").live_sha == run.sha  # the swap is atomic on the VM


# -- concurrency ------------------------------------------------------------------------------------


def test_runs_of_one_environment_wait_for_each_other(world: World, clock: ManualClock) -> None:
    first = world.push(REPO, "staging")
    clock.advance(5)
    second = world.push(REPO, "staging")
    assert world.run_status(second).status == "pending"
    clock.advance(5)
    third = world.push(REPO, "staging")  # GitHub cancels the older pending run
    finish(world, clock, second, limit=10)
    assert world.run_status(second).conclusion == "cancelled"
    assert world.run_status(third).status == "pending"
    assert world.cancel(first)
    finish(world, clock, first, limit=30)
    clock.advance(10)
    assert world.run_status(third).status in ("queued", "in_progress")
    finish(world, clock, third)
    assert world.run_status(third).conclusion == "success"
    assert world.environment(REPO, "staging").live_sha == third.sha


# -- rollback (dispatch) ------------------------------------------------------------------------------


def test_dispatch_of_a_sha_is_a_rollback_run_without_a_build(
    world: World, clock: ManualClock
) -> None:
    good = world.push(REPO, "production")
    finish(world, clock, good)
    finish(world, clock, world.push(REPO, "production"))
    target = good.sha
    assert world.environment(REPO, "production").retained[0] == target
    run = world.dispatch(
        REPO,
        "deploy.yml",
        "main",
        {"sha": target, "environment": "production", "request_id": "a1b2c3d4e5f6"},
        actor="priya-r",
    )
    assert run.is_rollback and run.event == "workflow_dispatch"
    assert run.head_branch == "main" and run.head_sha == world.repo(REPO).branches["main"]
    assert run.sha == target and run.actor == "priya-r"
    assert "a1b2c3d4e5f6" in run.display_title and run.request_id == "a1b2c3d4e5f6"
    assert run not in world.runs()  # listed a moment after the request
    clock.advance(3)
    assert world.runs()[0] is run
    finish(world, clock, run)
    assert [job.name for job in world.jobs(run)] == ["deploy"]
    assert not any("Build" in step.name for job in world.jobs(run) for step in job.steps)
    assert world.run_status(run).conclusion == "success"
    assert world.environment(REPO, "production").live_sha == target
    assert f"kamal deploy --skip-push --version {target}" in log_of(world, run, "deploy")


def test_dispatch_is_refused_like_github_does(world: World) -> None:
    sha = world.environment(REPO, "production").live_sha
    assert sha is not None
    cases = [
        ("deploy.yml", sha, {"sha": sha}, f"No ref found for: {sha}"),
        ("deploy.yml", "nope", {"sha": sha}, "No ref found for: nope"),
        ("deploy.yml", "main", {"sha": sha, "x": "1"}, 'Unexpected inputs provided: ["x"]'),
        ("deploy.yml", "main", {}, "Required input 'sha' not provided"),
        ("deploy.yml", "main", {"sha": sha[:7]}, "Invalid value for input 'sha'"),
        (
            "deploy.yml",
            "main",
            {"sha": sha, "environment": "qa"},
            "not in the list of allowed values",
        ),
        ("other.yml", "main", {"sha": sha}, "Not Found"),
    ]
    for workflow, ref, inputs, message in cases:
        with pytest.raises(WorldError, match=message.replace("[", r"\[").replace("]", r"\]")):
            world.dispatch(REPO, workflow, ref, inputs)


def test_rollback_to_an_image_gone_from_ghcr_fails_at_the_pull(
    world: World, clock: ManualClock
) -> None:
    repo = world.repo(REPO)
    deleted = [sha for sha, when in world._image_deleted[REPO].items() if when <= clock.now()]
    assert deleted, "the seeded world deletes a few old images"
    gone = deleted[0]
    assert gone not in world.image_tags(repo)
    assert world.commit(repo, gone) is not None
    run = world.dispatch(REPO, "deploy.yml", "main", {"sha": gone, "environment": "production"})
    finish(world, clock, run)
    assert run.scenario == "image_gone"
    assert world.run_status(run).conclusion == "failure"
    text = log_of(world, run, "deploy")
    assert "docker stderr: Error response from daemon: manifest unknown" in text  # GHCR's words


# -- retained containers, compare -----------------------------------------------------------------------


def test_kamal_keeps_the_last_five_stopped_containers(world: World, clock: ManualClock) -> None:
    shas = []
    for _ in range(7):
        run = world.push(REPO, "staging")
        finish(world, clock, run)
        clock.advance(5)
        shas.append(run.sha)
    env = world.environment(REPO, "staging")
    assert env.live_sha == shas[-1]
    assert env.retained == tuple(reversed(shas[1:-1]))  # newest first, five of them
    names = [container.name for container in world.containers(env.deploy_host) if container.running]
    assert names == [f"{env.service}-web-staging-{shas[-1]}"]


def test_compare_lists_migration_files_between_two_deploys(
    world: World, clock: ManualClock
) -> None:
    repo = world.repo(REPO)
    base = world.environment(REPO, "production").live_sha
    assert base is not None
    migration = "alembic/versions/4c1d2e3f5a6b_drop_code_from_coupons.py"
    first = world.push(
        REPO,
        "production",
        message="Drop legacy coupons.code column",
        files=(migration, "app/models.py"),
    )
    finish(world, clock, first)
    second = world.push(REPO, "production", files=("app/main.py",))
    finish(world, clock, second)
    files = world.compare(repo, base, second.sha)
    assert migration in files and "app/main.py" in files
    ahead = world.comparison(repo, base, second.sha)
    assert ahead is not None and ahead.status == "ahead" and ahead.behind_by == 0
    assert [commit.sha for commit in ahead.commits][-2:] == [first.sha, second.sha]
    added = {change.filename: change.status for change in ahead.files}
    assert added[migration] == "added"
    behind = world.comparison(repo, second.sha, base)
    assert behind is not None and behind.status == "behind" and behind.files == ()
    same = world.comparison(repo, base, base)
    assert same is not None and same.status == "identical"
    diverged = world.comparison(repo, repo.branches["hotfix/checkout-timeout"], "main")
    assert diverged is not None and diverged.status == "diverged" and diverged.behind_by == 1
    assert world.comparison(repo, "0" * 40, base) is None
    assert world.commit(repo, second.sha[:7]) == world.commit(repo, second.sha)
