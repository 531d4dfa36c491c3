"""The sandbox GitHub server's unkind side: token scopes, the rate budget, injected faults, and
the request record tests use to check what a client sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from vmkit_tui.sandbox.servers.faults import FaultKind
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
RUNS = f"/repos/{REPO}/actions/runs"
PACKAGES = "/orgs/acme/packages/container/my-fastapi-app/versions"


@asynccontextmanager
async def serving(world: World, **options: object) -> AsyncIterator[tuple[GitHubSandbox, str]]:
    server = GitHubSandbox(world, **options)  # type: ignore[arg-type]
    base = await server.start()
    try:
        yield server, base
    finally:
        await server.stop()


async def test_tokens_and_scopes_decide_like_github(world: World) -> None:
    tokens = {
        "full": {"repo", "workflow", "read:packages"},
        "no-packages": {"repo", "workflow"},
        "no-repo": {"read:packages"},
        "github_pat_fine": {"repo", "read:packages"},
    }
    async with (
        serving(world, tokens=tokens) as (_, base),
        httpx.AsyncClient(base_url=base) as client,
    ):

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"token {token}"}

        missing = await client.get(RUNS)
        assert missing.status_code == 401 and missing.json()["message"] == "Requires authentication"
        wrong = await client.get(RUNS, headers=auth("ghp_wrong"))
        assert wrong.status_code == 401 and wrong.json()["message"] == "Bad credentials"
        full = await client.get(RUNS, headers={"Authorization": "Bearer full"})
        assert full.status_code == 200
        assert full.headers["x-oauth-scopes"] == "read:packages, repo, workflow"
        assert (await client.get(PACKAGES, headers=auth("full"))).status_code == 200
        denied = await client.get(PACKAGES, headers=auth("no-packages"))
        assert denied.status_code == 403
        assert (
            denied.json()["message"]
            == "You need at least read:packages scope to get a package's versions."
        )
        assert denied.headers["x-accepted-oauth-scopes"] == "read:packages"
        assert (
            int(denied.headers["x-ratelimit-remaining"]) > 0
        )  # a permission 403, not a rate limit
        assert (await client.get(RUNS, headers=auth("no-packages"))).status_code == 200
        hidden = await client.get(RUNS, headers=auth("no-repo"))
        assert hidden.status_code == 404  # private repos are invisible, not forbidden
        fine_grained = await client.get(PACKAGES, headers=auth("github_pat_fine"))
        assert fine_grained.status_code == 403
        bad_version = await client.get(
            RUNS, headers=auth("full") | {"X-GitHub-Api-Version": "2021-01-01"}
        )
        assert bad_version.status_code == 400


async def test_the_rate_budget_runs_out_and_resets_with_simulated_time(
    world: World, clock: ManualClock, auth: dict[str, str]
) -> None:
    async with (
        serving(world, rate_limit=3) as (server, base),
        httpx.AsyncClient(base_url=base, headers=auth) as client,
    ):
        remaining = [
            int((await client.get(RUNS)).headers["x-ratelimit-remaining"]) for _ in range(3)
        ]
        assert remaining == [2, 1, 0]
        free = await client.get("/rate_limit")
        assert free.status_code == 200 and free.json()["resources"]["core"]["remaining"] == 0
        limited = await client.get(RUNS)
        assert limited.status_code == 403
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert "rate limit exceeded" in limited.json()["message"]
        reset = int(limited.headers["x-ratelimit-reset"])
        assert reset == int(clock.now().timestamp()) + 3600
        assert server.rate_remaining() == 0
        clock.advance(3600)
        assert (await client.get(RUNS)).status_code == 200
    strict = serving(world, rate_limit=1, rate_limit_status=429)
    async with strict as (_, base), httpx.AsyncClient(base_url=base, headers=auth) as client:
        await client.get(RUNS)
        assert (await client.get(RUNS)).status_code == 429


async def test_server_error_bursts_then_recovery(
    api: httpx.AsyncClient, sandbox: GitHubSandbox
) -> None:
    burst = sandbox.faults.server_errors(2, status=502, path="/repos/*/actions/runs")
    statuses = [(await api.get(RUNS)).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert burst.hits == 2 and burst.exhausted
    sandbox.faults.server_errors(1, status=500)
    failed = await api.get(RUNS)
    assert failed.status_code == 500 and failed.json()["message"] == "Server Error"
    assert [r.fault for r in sandbox.requests] == [FaultKind.SERVER_ERROR] * 2 + [
        None,
        FaultKind.SERVER_ERROR,
    ]
    assert not any(r.counted for r in sandbox.requests if r.fault)


async def test_secondary_rate_limits_with_and_without_headers(
    api: httpx.AsyncClient, sandbox: GitHubSandbox
) -> None:
    sandbox.faults.secondary_rate_limit(retry_after=60)
    limited = await api.get(RUNS)
    assert limited.status_code == 403 and limited.headers["retry-after"] == "60"
    assert "secondary rate limit" in limited.json()["message"]
    assert int(limited.headers["x-ratelimit-remaining"]) > 0
    sandbox.faults.secondary_rate_limit(retry_after=None, rate_headers=False)
    bare = await api.get(RUNS)
    assert bare.status_code == 403 and "secondary rate limit" in bare.json()["message"]
    assert "retry-after" not in bare.headers
    assert not any(name.startswith("x-ratelimit-") for name in bare.headers)
    sandbox.faults.too_many_requests(retry_after=30)
    too_many = await api.get(RUNS)
    assert too_many.status_code == 429 and too_many.headers["retry-after"] == "30"


async def test_slow_responses_wait_for_simulated_time(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, clock: ManualClock
) -> None:
    sandbox.faults.slow(30, method="GET", path=RUNS)
    pending = asyncio.create_task(api.get(RUNS))

    async def asleep() -> None:
        while clock.pending_sleepers == 0:
            await asyncio.sleep(0.005)  # poll interval of a condition wait, not a guess

    await asyncio.wait_for(asleep(), timeout=5)
    assert not pending.done()
    clock.advance(30)
    response = await asyncio.wait_for(pending, timeout=5)
    assert response.status_code == 200


async def test_malformed_json_bodies(api: httpx.AsyncClient, sandbox: GitHubSandbox) -> None:
    sandbox.faults.malformed_json(path=RUNS)
    broken = await api.get(RUNS)
    assert broken.status_code == 200 and broken.headers["content-type"].startswith(
        "application/json"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    assert (await api.get(RUNS)).json()["total_count"] >= 1


async def test_dropped_connections(api: httpx.AsyncClient, sandbox: GitHubSandbox) -> None:
    sandbox.faults.drop_connection(method="GET")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.get(RUNS)
    assert (
        sandbox.requests[-1].status is None
        and sandbox.requests[-1].fault is FaultKind.DROP_CONNECTION
    )
    assert (await api.get(RUNS)).status_code == 200


async def test_a_lost_dispatch_response_still_creates_the_run(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World, clock: ManualClock
) -> None:
    sandbox.faults.lose_dispatch_response()
    before = {run.id for run in world.runs(include_future=True)}
    sha = world.environment(REPO, "production").live_sha
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post(
            f"/repos/{REPO}/actions/workflows/deploy.yml/dispatches",
            json={
                "ref": "main",
                "inputs": {"sha": sha, "request_id": "c0ffee123456"},
                "return_run_details": True,
            },
        )
    created = [run for run in world.runs(include_future=True) if run.id not in before]
    assert len(created) == 1 and created[0].request_id == "c0ffee123456"
    clock.advance(5)
    listed = (await api.get(f"{RUNS}", params={"event": "workflow_dispatch"})).json()[
        "workflow_runs"
    ]
    assert any("c0ffee123456" in run["display_title"] for run in listed)  # found by its request id


async def test_the_request_record_never_holds_the_token(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World
) -> None:
    await api.get(RUNS, params={"per_page": 2})
    await api.get("/rate_limit")
    async with httpx.AsyncClient(base_url=sandbox.base_url) as anonymous:
        await anonymous.get(RUNS)
    first = sandbox.requests[0]
    assert (first.method, first.path, first.query, first.status) == ("GET", RUNS, "per_page=2", 200)
    assert first.authorized and first.at == world.clock.now()
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert not sandbox.requests[-1].authorized and sandbox.requests[-1].status == 401
    assert SANDBOX_TOKEN not in repr(sandbox.requests)
    assert all("authorization" not in request.headers for request in sandbox.requests)
