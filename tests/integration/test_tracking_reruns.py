"""GitHub re-runs and the past's logs, against the sandbox GitHub over real HTTP in virtual time.

A re-run (`run_attempt` > 1) is a deploy of its own with a deterministic id: its own status,
duration, job logs and diagnosis; the earlier attempt's record stays as it was, and two
services on one history record it once. A failed deploy recorded without logs at the first
start gets its logs and diagnosis when someone asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.tracking_fixtures import (
    REPO,
    SimTime,
    health_is,
    make_config,
    record_of,
    tracking,
)
from vmkit_tui.domain.event_ids import rerun_deploy_id
from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.updates import DeployChanged, Health
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.sources.github.job_log import parse_job_log
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import SpoolReader, spool_path
from vmkit_tui.tracking.job_logs import logged_jobs
from vmkit_tui.tracking.polling import TrackingTiming

pytest_plugins = ["tests.integration.sandbox_fixtures"]

RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}"
ATTEMPT = "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}"
JOBS = "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"
RERUN = "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun"
Schema = Callable[[str, str, int, Any], None]


def spool_texts(data_dir: Path, deploy_id: str) -> list[str]:
    with SpoolReader(spool_path(data_dir, deploy_id)) as reader:
        return [line.text for line in reader]


def attempt_lines(world: World, run: Run, attempt: int) -> list[str]:
    """Every line of that attempt's job logs, as GitHub serves them."""
    return [
        line.text
        for job in world.jobs(run, None if attempt == run.run_attempt else attempt)
        for line in parse_job_log(world.job_log(job.id) or "").lines
    ]


def finish(world: World, clock: ManualClock, run: Run) -> None:
    while world.run_status(run).status != "completed":
        clock.advance(30)


async def test_the_sandbox_reruns_a_finished_run_as_github_does(
    world: World, clock: ManualClock, api: httpx.AsyncClient, schema: Schema, sandbox: GitHubSandbox
) -> None:
    sandbox.actor = "ops-oncall"  # the token's user: not who pushed
    run = world.push(REPO, "production", "health_timeout")
    assert run.actor != sandbox.actor
    base = f"/repos/{REPO}/actions/runs/{run.id}"
    clock.advance(5)
    running = await api.post(f"{base}/rerun")
    assert running.status_code == 403  # GitHub refuses to re-run a run that is not done
    assert "already running" in running.json()["message"]
    finish(world, clock, run)
    first = (await api.get(f"{base}/jobs")).json()
    schema(JOBS, "get", 200, first)

    clock.advance(60)
    rerun_at = clock.now()
    reply = await api.post(f"{base}/rerun")
    assert reply.status_code == 201 and reply.json() == {}
    schema(RERUN, "post", 201, reply.json())

    current = (await api.get(base)).json()
    schema(RUN, "get", 200, current)
    assert current["run_attempt"] == 2 and current["status"] != "completed"
    assert current["run_started_at"] == rerun_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert current["previous_attempt_url"].endswith(f"{base}/attempts/1")
    before = (await api.get(f"{base}/attempts/1")).json()
    schema(ATTEMPT, "get", 200, before)
    assert before["run_attempt"] == 1 and before["conclusion"] == "failure"
    # `actor` stays who triggered the run; `triggering_actor` is who started the attempt
    assert current["actor"]["login"] == before["actor"]["login"] == run.actor
    assert current["triggering_actor"]["login"] == "ops-oncall"
    assert before["triggering_actor"]["login"] == run.actor
    assert before["run_started_at"] < current["run_started_at"]

    finish(world, clock, run)
    now_jobs = (await api.get(f"{base}/jobs")).json()
    again = (await api.get(f"{base}/attempts/2/jobs")).json()
    old = (await api.get(f"{base}/attempts/1/jobs")).json()
    schema(JOBS, "get", 200, again)
    assert [job["id"] for job in now_jobs["jobs"]] == [job["id"] for job in again["jobs"]]
    assert [job["id"] for job in old["jobs"]] == [job["id"] for job in first["jobs"]]
    assert not {job["id"] for job in again["jobs"]} & {job["id"] for job in old["jobs"]}
    assert {job["run_attempt"] for job in again["jobs"]} == {2}
    assert {job["run_attempt"] for job in old["jobs"]} == {1}
    assert (await api.get(base)).json()["conclusion"] == "success"
    assert (await api.get(f"{base}/attempts/1")).json()["conclusion"] == "failure"
    assert (await api.get(f"{base}/attempts/3")).status_code == 404
    assert (await api.get(f"{base}/attempts/3/jobs")).status_code == 404
    for job in old["jobs"]:  # the first attempt's logs are still there
        assert (await api.get(f"/repos/{REPO}/actions/jobs/{job['id']}/logs")).status_code == 302


def attempt_of(run: Run, attempt: int, when: Callable[[DeployRecord], bool]) -> Callable[..., bool]:
    return record_of(run.id, lambda r: r.run_attempt == attempt and when(r))


async def test_a_rerun_is_a_deploy_of_its_own_and_the_first_attempt_stays_as_it_was(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path, auth: dict[str, str]
) -> None:
    diagnosed: Callable[[DeployRecord], bool] = lambda r: r.diagnosis is not None  # noqa: E731
    async with (
        tracking(sandbox, clock, tmp_path) as (_a, first),
        tracking(sandbox, clock, tmp_path) as (_b, second),
    ):
        await first.wait(health_is(Health.OK))
        await second.wait(health_is(Health.OK))
        run = world.push(REPO, "production", "health_timeout")
        done = await first.wait(attempt_of(run, 1, diagnosed))
        assert isinstance(done, DeployChanged)
        failed = done.record
        assert failed.diagnosis is not None
        assert failed.diagnosis.cause.startswith("Health check timed out")
        lines_before = spool_texts(tmp_path, failed.id)
        assert lines_before == attempt_lines(world, run, 1)

        world.rerun(run, "ghcr_push_denied", actor="priya-rao")  # someone else re-runs it,
        # and it fails another way
        second_try = await first.wait(attempt_of(run, 2, diagnosed))
        assert isinstance(second_try, DeployChanged)
        retried = second_try.record
        await second.wait(attempt_of(run, 2, diagnosed))

        sandbox.actor = "ops-oncall"  # whose token re-runs it the third time
        async with httpx.AsyncClient(base_url=sandbox.base_url, headers=auth) as api:
            reply = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/rerun")
            assert reply.status_code == 201
        third = await first.wait(
            attempt_of(run, 3, lambda r: r.status is Status.SUCCEEDED and len(logged_jobs(r)) == 2)
        )
        assert isinstance(third, DeployChanged)
        await second.wait(attempt_of(run, 3, lambda r: r.status is Status.SUCCEEDED))

    history = History(tmp_path / "history.json")
    records = [r for r in history.records(REPO, "production") if r.run_id == run.id]
    by_attempt = {r.run_attempt: r for r in records}
    assert sorted(by_attempt) == [1, 2, 3] and len(records) == 3  # once each, two services
    assert by_attempt[2].id == retried.id == rerun_deploy_id(REPO, run.id, 2)
    assert by_attempt[3].id == rerun_deploy_id(REPO, run.id, 3)

    # each attempt is attributed to whoever started it (GitHub's triggering_actor)
    assert run.actor not in ("priya-rao", "ops-oncall")
    assert by_attempt[1].deploy.actor == run.actor
    assert by_attempt[2].deploy.actor == "priya-rao"
    assert by_attempt[3].deploy.actor == "ops-oncall"

    # the first attempt's record and log are exactly what they were before the re-runs
    assert by_attempt[1].events == failed.events
    assert by_attempt[1].status is Status.FAILED
    assert spool_texts(tmp_path, failed.id) == lines_before

    # each re-run: its own status, times, log and diagnosis
    second_state = world.run_status(run, 2)
    retried = by_attempt[2]
    assert retried.status is Status.FAILED and retried.deploy.sha == failed.deploy.sha
    assert retried.started_at == second_state.run_started_at.replace(microsecond=0)
    assert retried.finished_at == second_state.updated_at.replace(microsecond=0)
    assert retried.deploy.created_at > failed.finished_at  # type: ignore[operator]
    assert retried.diagnosis is not None
    assert retried.diagnosis.cause.startswith("Image push to GHCR was denied")
    assert spool_texts(tmp_path, retried.id) == attempt_lines(world, run, 2)

    last = by_attempt[3]
    assert last.status is Status.SUCCEEDED and last.diagnosis is None
    assert last.started_at == world.run_status(run).run_started_at.replace(microsecond=0)
    assert spool_texts(tmp_path, last.id) == attempt_lines(world, run, 3)
    assert last.started_at > retried.finished_at  # type: ignore[operator]


async def test_a_failed_run_recorded_without_logs_is_diagnosed_when_asked_for(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    failed_run = world.push(REPO, "production", "buildpack_no_procfile")
    finish(world, clock, failed_run)
    older = world.push(REPO, "production", "health_timeout")  # both failed before the first start
    finish(world, clock, older)
    clock.advance(3600)
    async with tracking(sandbox, clock, tmp_path) as (service, updates):
        past = await updates.wait(record_of(failed_run.id, lambda r: r.status.is_final))
        assert isinstance(past, DeployChanged)
        record = past.record
        assert record.status is Status.FAILED and record.diagnosis is None
        assert not spool_path(tmp_path, record.id).exists()  # the past: no logs
        asked = await service.fetch_logs(record.id)
        assert asked.diagnosis is not None
        assert asked.diagnosis.cause.startswith("Buildpack detection failed")
        assert spool_texts(tmp_path, record.id) == attempt_lines(world, failed_run, 1)
        again = await service.fetch_logs(record.id)  # once is enough: nothing fetched twice
        assert again.events == asked.events
    assert len(spool_texts(tmp_path, record.id)) == len(attempt_lines(world, failed_run, 1))

    # without tracking (the CLI's `logs`): the service fetches them for this one deploy
    history = History(tmp_path / "history.json")
    other = history.find_by_run(REPO, older.id)
    assert other is not None and other.diagnosis is None
    assert not spool_path(tmp_path, other.id).exists()
    idle = DeployService(
        make_config(sandbox.base_url),
        AsyncHistory(history),
        tmp_path,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
    )
    try:
        found = await idle.fetch_logs(other.id)
    finally:
        await idle.stop()
    assert found.diagnosis is not None and found.diagnosis.cause.startswith("Health check")
    assert spool_texts(tmp_path, other.id) == attempt_lines(world, older, 1)
