"""GitHubClient against the sandbox GitHub server over real HTTP on 127.0.0.1.

The client's sleeps advance the world's ManualClock (a rate-limit wait or a dispatch lookup
moves simulated time, not the test's), and every wait on a real socket has a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from vmkit_tui.domain.secret import Secret
from vmkit_tui.sandbox.servers.faults import FaultKind
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import (
    AuthError,
    BadResponse,
    CancelOutcome,
    GitHubClient,
    ImageCheck,
    ImageState,
    RateLimited,
)
from vmkit_tui.sources.github.job_log import parse_job_log

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
WORKFLOW = "deploy.yml"
DISPATCHES = f"/repos/{REPO}/actions/workflows/{WORKFLOW}/dispatches"


@dataclass
class SimTime:
    """The client's clock and sleep, both on the world's ManualClock."""

    clock: ManualClock
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sim(clock: ManualClock) -> SimTime:
    return SimTime(clock)


def make_client(
    sandbox: GitHubSandbox, sim: SimTime, token: str = SANDBOX_TOKEN, **options: object
) -> GitHubClient:
    return GitHubClient(
        sandbox.base_url,
        Secret(token),
        clock=sim.now,
        sleep=sim.sleep,
        dispatch_lookup_timeout=20.0,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(sandbox: GitHubSandbox, sim: SimTime) -> AsyncIterator[GitHubClient]:
    async with make_client(sandbox, sim) as github:
        yield github


def finish(world: World, clock: ManualClock, run: Run, limit_s: float = 3600) -> None:
    waited = 0.0
    while world.run_status(run).status != "completed":
        assert waited < limit_s, "the run never completed"
        clock.advance(5)
        waited += 5


async def test_runs_paginate_through_repositories_links_and_idle_polls_cost_nothing(
    client: GitHubClient, sandbox: GitHubSandbox, world: World
) -> None:
    expected = [run.id for run in world.runs(REPO)]
    runs = await client.list_runs(REPO, WORKFLOW, per_page=4)
    assert [run.id for run in runs] == expected and len(expected) > 8
    paths = [request.path for request in sandbox.requests]
    assert paths[0] == f"/repos/{REPO}/actions/workflows/{WORKFLOW}/runs"
    assert all(path.startswith("/repositories/") for path in paths[1:]) and len(paths) > 2
    first_round = client.stats.counted
    again = await client.list_runs(REPO, WORKFLOW, per_page=4)
    assert again == runs
    assert client.stats.counted == first_round  # every page came back 304
    assert client.stats.not_modified == len(paths)
    assert not any(request.counted for request in sandbox.requests[len(paths) :])


async def test_filters_reach_github(client: GitHubClient, world: World) -> None:
    target = world.runs(REPO)[3]
    found = await client.list_runs(
        REPO, WORKFLOW, head_sha=target.head_sha, branch=target.head_branch
    )
    assert target.id in [run.id for run in found]
    assert all(run.head_sha == target.head_sha for run in found)


async def test_run_jobs_and_log_without_the_token_on_the_log_host(
    client: GitHubClient, sandbox: GitHubSandbox, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    run = next(r for r in world.runs(REPO) if world.run_status(r).status == "completed")
    fetched = await client.get_run(REPO, run.id)
    assert (fetched.id, fetched.head_sha, fetched.display_title) == (
        run.id,
        run.head_sha,
        run.display_title,
    )
    jobs = await client.list_jobs(REPO, run.id)
    assert [job.id for job in jobs] == [job.id for job in world.jobs(run)]
    assert jobs[0].steps and jobs[0].steps == tuple(sorted(jobs[0].steps, key=lambda s: s.number))
    with caplog.at_level(logging.DEBUG):
        log = await client.job_log(REPO, jobs[0].id)
    assert log is not None
    assert log == parse_job_log(world.job_log(jobs[0].id) or "")
    assert log.lines[0].text and not log.lines[0].text.startswith("\ufeff")
    blob = [request for request in sandbox.requests if request.path.startswith("/_blob/")]
    assert len(blob) == 1 and not blob[0].authorized
    signature = dict(part.split("=", 1) for part in blob[0].query.split("&"))["sig"]
    assert signature not in caplog.text and SANDBOX_TOKEN not in caplog.text
    assert "/_blob/" in caplog.text  # httpx did log the request, redacted


async def test_job_log_is_none_while_the_job_runs(
    client: GitHubClient, world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    clock.advance(20)
    job_id = world.jobs(run)[0].id
    assert await client.job_log(REPO, job_id) is None
    finish(world, clock, run)
    log = await client.job_log(REPO, job_id)
    assert log is not None and log.groups


async def test_cancel_then_cancel_a_finished_run(
    client: GitHubClient, world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    clock.advance(30)
    assert await client.cancel(REPO, run.id) is CancelOutcome.REQUESTED
    finish(world, clock, run)
    done = await client.get_run(REPO, run.id)
    assert (done.status, done.conclusion) == ("completed", "cancelled")
    assert await client.cancel(REPO, run.id) is CancelOutcome.ALREADY_FINISHED
    assert await client.force_cancel(REPO, run.id) is CancelOutcome.ALREADY_FINISHED


def rollback_inputs(world: World) -> dict[str, str]:
    sha = world.environment(REPO, "production").live_sha
    assert sha is not None
    return {"sha": sha, "environment": "production"}


def runs_with(world: World, request_id: str) -> list[Run]:
    return [run for run in world.runs(include_future=True) if run.request_id == request_id]


async def test_dispatch_returns_the_run(client: GitHubClient, world: World) -> None:
    result = await client.dispatch(REPO, WORKFLOW, "main", rollback_inputs(world), "req-0000000001")
    (run,) = runs_with(world, "req-0000000001")
    assert result.run_id == run.id and result.html_url and result.html_url.endswith(str(run.id))
    fetched = await client.get_run(REPO, run.id)
    assert "req-0000000001" in fetched.display_title and fetched.event == "workflow_dispatch"


async def test_dispatch_on_old_ghes_finds_its_run_by_request_id(
    client: GitHubClient, sandbox: GitHubSandbox, world: World, sim: SimTime
) -> None:
    sandbox.dispatch_run_details = False
    result = await client.dispatch(REPO, WORKFLOW, "main", rollback_inputs(world), "req-0000000002")
    (run,) = runs_with(world, "req-0000000002")
    assert result.run_id == run.id
    posts = [r.status for r in sandbox.requests if r.path == DISPATCHES]
    assert posts == [422, 204]
    assert sim.sleeps  # the run only appears a moment later: the client waited for it


async def test_lost_dispatch_response_makes_exactly_one_run(
    client: GitHubClient, sandbox: GitHubSandbox, world: World
) -> None:
    sandbox.faults.lose_dispatch_response()
    result = await client.dispatch(REPO, WORKFLOW, "main", rollback_inputs(world), "req-0000000003")
    (run,) = runs_with(world, "req-0000000003")
    assert result.run_id == run.id
    assert [r.fault for r in sandbox.requests if r.path == DISPATCHES] == [FaultKind.DISPATCH_LOST]


async def test_dispatch_dropped_before_github_acted_is_sent_again_once(
    client: GitHubClient, sandbox: GitHubSandbox, world: World
) -> None:
    sandbox.faults.drop_connection(method="POST", path=DISPATCHES)
    result = await client.dispatch(REPO, WORKFLOW, "main", rollback_inputs(world), "req-0000000004")
    (run,) = runs_with(world, "req-0000000004")
    assert result.run_id == run.id
    assert [r.status for r in sandbox.requests if r.path == DISPATCHES] == [None, 200]


async def test_server_errors_and_dropped_connections_are_retried(
    client: GitHubClient, sandbox: GitHubSandbox, sim: SimTime
) -> None:
    burst = sandbox.faults.server_errors(2, status=502, path="*/runs")
    dropped = sandbox.faults.drop_connection(method="GET", path="*/runs")
    runs = await client.list_runs(REPO, WORKFLOW, max_pages=1)
    assert runs and burst.hits == 2 and dropped.hits == 1
    assert len(sim.sleeps) == 3 and all(0 < s <= 8 for s in sim.sleeps)


async def test_rate_limits_are_waited_out_as_github_says(
    sandbox: GitHubSandbox, sim: SimTime
) -> None:
    seen: list[RateLimited] = []
    sandbox.faults.too_many_requests(retry_after=30, path="*/runs")
    sandbox.faults.secondary_rate_limit(retry_after=None, rate_headers=False, path="*/runs")
    async with make_client(sandbox, sim, on_rate_limit=seen.append) as github:
        assert await github.list_runs(REPO, WORKFLOW, max_pages=1)
        assert github.rate_limited_until is None
    assert sim.sleeps == [30.0, 60.0]
    assert [limit.secondary for limit in seen] == [True, True]
    assert [r.status for r in sandbox.requests] == [429, 403, 200]


async def test_exhausted_budget_raises_until_reset_and_sends_nothing_meanwhile(
    world: World, sim: SimTime, clock: ManualClock
) -> None:
    server = GitHubSandbox(world, rate_limit=2)
    await server.start()
    try:
        async with make_client(server, sim) as github:
            await github.get_run(REPO, world.runs(REPO)[0].id)
            await github.get_run(REPO, world.runs(REPO)[1].id)
            with pytest.raises(RateLimited) as caught:
                await github.get_run(REPO, world.runs(REPO)[2].id)
            assert 3500 < caught.value.wait <= 3601 and not caught.value.secondary
            assert github.rate_limited_until is not None
            sent = len(server.requests)
            with pytest.raises(RateLimited):
                await github.list_runs(REPO, WORKFLOW)
            assert len(server.requests) == sent
            clock.advance(3601)
            assert github.rate_limited_until is None
            assert (await github.get_run(REPO, world.runs(REPO)[2].id)).id
    finally:
        await server.stop()


async def test_malformed_json_is_a_clear_error_then_the_next_call_works(
    client: GitHubClient, sandbox: GitHubSandbox, world: World
) -> None:
    run_id = world.runs(REPO)[0].id
    sandbox.faults.malformed_json(path=f"*/runs/{run_id}")
    with pytest.raises(BadResponse) as caught:
        await client.get_run(REPO, run_id)
    message = str(caught.value)
    assert f"GET /repos/{REPO}/actions/runs/{run_id}" in message and SANDBOX_TOKEN not in message
    assert (await client.get_run(REPO, run_id)).id == run_id


async def test_a_slow_answer_times_out_and_is_retried(
    sandbox: GitHubSandbox, sim: SimTime, world: World, clock: ManualClock
) -> None:
    run_id = world.runs(REPO)[0].id
    # The server sleeps an hour of simulated time (the test's clock barely moves): the client's
    # real-time deadline expires, and its retry is answered at once.
    slow = sandbox.faults.slow(3600, path=f"*/runs/{run_id}")
    async with make_client(sandbox, sim, timeout=0.3) as github:
        run = await asyncio.wait_for(github.get_run(REPO, run_id), timeout=10)
    assert run.id == run_id and len(sim.sleeps) == 1 and slow.hits == 1
    clock.advance(3600)  # let the abandoned handler finish so the server stops promptly


async def test_compare_and_commits(client: GitHubClient, world: World) -> None:
    repo = world.repo(REPO)
    ordered = sorted(repo.commits, key=lambda c: c.date)
    base, head = ordered[2].sha, ordered[-1].sha
    result = await client.compare(REPO, base, head)
    assert result.status == "ahead" and result.behind_by == 0
    assert set(result.files) == set(world.compare(REPO, base, head))
    assert [c.sha for c in result.commits][-1] == head
    commit = await client.get_commit(REPO, head)
    assert commit is not None and commit.sha == head and commit.message
    assert await client.get_commit(REPO, "0" * 40) is None


async def test_image_tags(
    client: GitHubClient, sandbox: GitHubSandbox, world: World, sim: SimTime
) -> None:
    repo = world.repo(REPO)
    image = f"ghcr.io/{repo.owner}/{repo.package_name}"
    tags = world.image_tags(REPO)
    gone = next(c.sha for c in repo.commits if c.sha not in tags)
    listed = await client.image_tags(image)
    assert listed.complete and listed.tags is not None and set(tags) <= listed.tags
    assert ImageCheck.of(listed, next(iter(tags))).state is ImageState.PRESENT
    assert ImageCheck.of(listed, gone).state is ImageState.MISSING
    sandbox.tokens["gho_noPackagesScope000000000000000000"] = frozenset({"repo", "workflow"})
    async with make_client(sandbox, sim, token="gho_noPackagesScope000000000000000000") as limited:
        check = ImageCheck.of(await limited.image_tags(image), next(iter(tags)))
    assert check.state is ImageState.CANNOT_CHECK and "read:packages" in check.reason


async def test_rate_limit_endpoint(client: GitHubClient, sandbox: GitHubSandbox) -> None:
    limit = await client.rate_limit()
    assert limit.limit == sandbox.rate_limit and limit.remaining == sandbox.rate_remaining()


async def test_a_bad_token_is_a_clear_error_and_never_shown(
    sandbox: GitHubSandbox, sim: SimTime, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "ghp_" + "Zq9" * 12
    with caplog.at_level(logging.DEBUG):
        async with make_client(sandbox, sim, token=bad) as github:
            with pytest.raises(AuthError) as caught:
                await github.list_runs(REPO, WORKFLOW)
    error = caught.value
    assert error.__traceback__ is not None
    # The client's frames with their locals, as Textual's crash screen shows them (the test's own
    # frame is skipped: it holds the token as a plain string on purpose).
    report = traceback.TracebackException(
        type(error), error, error.__traceback__.tb_next, capture_locals=True
    )
    shown = [str(error), repr(error), caplog.text, "".join(report.format())]
    assert "_request" in shown[3] and "self = " in shown[3]
    assert "401" in shown[0] and "invalid or expired" in shown[0]
    assert not any(bad in text for text in shown)
    assert sandbox.requests[-1].authorized and sandbox.requests[-1].status == 401
