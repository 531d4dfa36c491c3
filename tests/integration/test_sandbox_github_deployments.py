"""The sandbox GitHub's deployments, deployment statuses and environments over real HTTP:
shapes (validated against GitHub's published schemas), GitHub's rules (ids grow, statuses are
append-only and newest first, auto_inactive), pagination and free 304s, token permissions,
faults, and the deployments Actions runs create for their deploy job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from vmkit_tui.sandbox.servers.github_server import (
    SANDBOX_READONLY_TOKEN,
    SANDBOX_TOKEN,
    GitHubSandbox,
)
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
DEPLOYMENTS = "/repos/{owner}/{repo}/deployments"
ONE = DEPLOYMENTS + "/{deployment_id}"
STATUSES = ONE + "/statuses"
SchemaCheck = Callable[[str, str, int, Any], None]
NEW = {"auto_merge": False, "required_contexts": []}


def _links(response: httpx.Response) -> dict[str, str]:
    found = {}
    for part in response.headers.get("link", "").split(","):
        if part.strip():
            url, rel = part.split(";")
            found[rel.strip().removeprefix('rel="').rstrip('"')] = url.strip().strip("<>")
    return found


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/repos/{REPO}/deployments", json=NEW | body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _status(api: httpx.AsyncClient, deployment_id: int, **body: Any) -> httpx.Response:
    return await api.post(f"/repos/{REPO}/deployments/{deployment_id}/statuses", json=body)


async def test_deployments_statuses_and_environments_follow_github(
    api: httpx.AsyncClient, world: World, clock: ManualClock, schema: SchemaCheck
) -> None:
    sha = world.repo(REPO).branches["main"]
    payload = {"vmkit_deploy_id": "d-1", "rollback_of": None, "strategy": "github"}
    first = await _create(
        api, ref=sha, environment="qa", task="deploy:rollback", payload=payload, description="x"
    )
    schema(DEPLOYMENTS, "post", 201, first)
    assert (first["sha"], first["ref"], first["task"], first["payload"]) == (
        sha,
        sha,
        "deploy:rollback",
        payload,
    )
    assert first["creator"]["login"] == "maria-chen" and first["production_environment"] is False
    second = await _create(api, ref="staging", environment="qa", payload="as text")
    assert second["id"] > first["id"] and second["payload"] == "as text"
    assert second["sha"] == world.repo(REPO).branches["staging"] and second["ref"] == "staging"

    # The environment exists from the first deployment to it.
    response = await api.get(f"/repos/{REPO}/environments/qa")
    schema("/repos/{owner}/{repo}/environments/{environment_name}", "get", 200, response.json())
    assert response.json()["name"] == "qa"
    response = await api.get(f"/repos/{REPO}/environments")
    schema("/repos/{owner}/{repo}/environments", "get", 200, response.json())
    assert "qa" in {env["name"] for env in response.json()["environments"]}
    assert (await api.get(f"/repos/{REPO}/environments/nowhere")).status_code == 404

    ids = []
    for state, extra in (
        ("queued", {}),
        ("in_progress", {"log_url": "https://ci.example/run/1"}),
        ("success", {"environment_url": "https://qa.example", "description": "done"}),
    ):
        clock.advance(5)
        response = await _status(api, first["id"], state=state, **extra)
        assert response.status_code == 201
        schema(STATUSES, "post", 201, response.json())
        ids.append(response.json()["id"])
    assert ids == sorted(ids)
    response = await api.get(f"/repos/{REPO}/deployments/{first['id']}/statuses")
    schema(STATUSES, "get", 200, response.json())
    listed = response.json()
    assert [status["id"] for status in listed] == ids[::-1]  # newest first
    assert [status["state"] for status in listed] == ["success", "in_progress", "queued"]
    assert listed[1]["log_url"] == listed[1]["target_url"] == "https://ci.example/run/1"
    response = await api.get(f"/repos/{REPO}/deployments/{first['id']}/statuses/{ids[0]}")
    schema(STATUSES + "/{status_id}", "get", 200, response.json())
    assert response.json()["state"] == "queued"  # earlier statuses never change

    response = await api.get(f"/repos/{REPO}/deployments/{first['id']}")
    schema(ONE, "get", 200, response.json())
    assert response.json()["updated_at"] > first["updated_at"]  # moved by its statuses
    missing = await api.get(f"/repos/{REPO}/deployments/1")
    assert missing.status_code == 404
    schema(ONE, "get", 404, missing.json())

    response = await api.get(
        f"/repos/{REPO}/deployments", params={"environment": "qa", "task": "deploy:rollback"}
    )
    schema(DEPLOYMENTS, "get", 200, response.json())
    assert [item["id"] for item in response.json()] == [first["id"]]
    response = await api.get(f"/repos/{REPO}/deployments", params={"ref": "staging"})
    assert second["id"] in [item["id"] for item in response.json()]
    assert first["id"] not in [item["id"] for item in response.json()]


async def test_bad_requests_are_refused_as_github_words_them(
    api: httpx.AsyncClient, world: World, schema: SchemaCheck
) -> None:
    before = len(world.deployments(REPO))
    unknown = await api.post(f"/repos/{REPO}/deployments", json=NEW | {"ref": "nope"})
    assert unknown.status_code == 422 and unknown.json()["message"] == "No ref found for: nope"
    schema(DEPLOYMENTS, "post", 422, unknown.json())
    no_ref = await api.post(f"/repos/{REPO}/deployments", json=NEW)
    assert no_ref.status_code == 422 and '"ref" wasn\'t supplied' in no_ref.json()["message"]
    bad_type = await api.post(
        f"/repos/{REPO}/deployments", json=NEW | {"ref": "main", "payload": 5}
    )
    assert bad_type.status_code == 422 and "properties/payload" in bad_type.json()["message"]
    assert len(world.deployments(REPO)) == before
    created = await _create(api, ref="main", environment="staging")
    bad_state = await _status(api, created["id"], state="done")
    assert bad_state.status_code == 422
    schema(STATUSES, "post", 422, bad_state.json())
    assert bad_state.json()["errors"][0]["field"] == "state"
    too_long = await _status(api, created["id"], state="success", description="x" * 141)
    assert too_long.status_code == 422
    assert (await _status(api, 1, state="success")).status_code == 404
    assert world.deployment(REPO, created["id"]).statuses == []  # type: ignore[union-attr]


async def test_a_success_makes_the_previous_success_of_the_environment_inactive(
    api: httpx.AsyncClient,
) -> None:
    older = await _create(api, ref="main", environment="qa")
    transient = await _create(api, ref="main", environment="qa", transient_environment=True)
    other_env = await _create(api, ref="main", environment="qa-2")
    for item in (transient, older, other_env):
        await _status(api, item["id"], state="success")
    newer = await _create(api, ref="main", environment="qa")
    await _status(api, newer["id"], state="in_progress")

    async def states(item: dict[str, Any]) -> list[str]:
        response = await api.get(f"/repos/{REPO}/deployments/{item['id']}/statuses")
        return [status["state"] for status in response.json()]

    assert await states(older) == ["success"]  # not before the newer one succeeds
    await _status(api, newer["id"], state="success")
    assert await states(older) == ["inactive", "success"]
    assert await states(transient) == ["success"]  # transient ones are left alone
    assert await states(other_env) == ["success"]  # another environment
    assert await states(newer) == ["success", "in_progress"]

    quiet = await _create(api, ref="main", environment="qa")
    await _status(api, quiet["id"], state="success", auto_inactive=False)
    assert await states(newer) == ["success", "in_progress"]  # auto_inactive: false


async def test_lists_paginate_and_an_unchanged_list_costs_no_rate_limit(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, clock: ManualClock
) -> None:
    made = [await _create(api, ref="main", environment="qa") for _ in range(5)]
    path = f"/repos/{REPO}/deployments"
    first = await api.get(path, params={"environment": "qa", "per_page": 2})
    assert [item["id"] for item in first.json()] == [item["id"] for item in made[::-1][:2]]
    links = _links(first)
    assert set(links) == {"next", "last"} and "environment=qa" in links["next"]
    last = await api.get(links["last"])
    assert [item["id"] for item in last.json()] == [made[0]["id"]]

    for _ in range(3):
        await _status(api, made[0]["id"], state="queued")
    response = await api.get(f"{path}/{made[0]['id']}/statuses", params={"per_page": 2})
    assert len(response.json()) == 2 and "next" in _links(response)

    listed = await api.get(path, params={"environment": "qa"})
    etag = listed.headers["etag"]
    remaining = sandbox.rate_remaining(SANDBOX_TOKEN)
    again = await api.get(path, params={"environment": "qa"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert sandbox.rate_remaining(SANDBOX_TOKEN) == remaining  # a 304 is free
    clock.advance(2)
    await _status(api, made[-1]["id"], state="in_progress")  # moves its updated_at
    changed = await api.get(path, params={"environment": "qa"}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_a_token_that_may_not_write_deployments_reads_but_creates_nothing(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World
) -> None:
    created = await _create(api, ref="main", environment="qa")
    readonly = {"Authorization": f"Bearer {SANDBOX_READONLY_TOKEN}"}
    path = f"/repos/{REPO}/deployments"
    listed = await api.get(path, headers=readonly)
    assert listed.status_code == 200 and listed.json()[0]["id"] == created["id"]
    assert (await api.get(f"/repos/{REPO}/actions/runs", headers=readonly)).status_code == 200
    before = [(item.id, len(item.statuses)) for item in world.deployments(REPO)]
    refused = await api.post(path, json=NEW | {"ref": "main"}, headers=readonly)
    assert refused.status_code == 403
    assert refused.json()["message"] == "Resource not accessible by personal access token"
    assert refused.headers["x-accepted-github-permissions"] == "deployments=write"
    status = await api.post(
        f"{path}/{created['id']}/statuses", json={"state": "success"}, headers=readonly
    )
    assert status.status_code == 403
    assert [(item.id, len(item.statuses)) for item in world.deployments(REPO)] == before

    sandbox.tokens["gho_classicNoRepo"] = frozenset({"read:packages"})
    sandbox.tokens["gho_deploymentsOnly"] = frozenset({"repo_deployment"})
    hidden = await api.get(path, headers={"Authorization": "Bearer gho_classicNoRepo"})
    assert hidden.status_code == 404  # a private repo's deployments are invisible
    allowed = await api.post(
        path,
        json=NEW | {"ref": "main"},
        headers={"Authorization": "Bearer gho_deploymentsOnly"},
    )
    assert allowed.status_code == 201
    assert allowed.headers["x-accepted-oauth-scopes"] == "repo, repo_deployment"


async def test_faults_apply_to_the_deployment_endpoints(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World
) -> None:
    created = await _create(api, ref="main", environment="qa")
    sandbox.faults.server_errors(1, path="*/deployments")
    assert (await api.get(f"/repos/{REPO}/deployments")).status_code == 502
    assert (await api.get(f"/repos/{REPO}/deployments")).status_code == 200
    sandbox.faults.server_errors(1, status=503, method="POST", path="*/statuses")
    down = await _status(api, created["id"], state="queued")
    assert down.status_code == 503
    assert world.deployment(REPO, created["id"]).statuses == []  # type: ignore[union-attr]
    sandbox.faults.drop_connection(1, method="POST", path="*/deployments")
    try:
        await api.post(f"/repos/{REPO}/deployments", json=NEW | {"ref": "main"})
    except httpx.HTTPError:
        pass
    else:
        raise AssertionError("the connection should have been dropped")


def _deploy_job_moments(world: World, run: Run) -> tuple[Any, ...]:
    job = next(view for view in world.jobs(run) if view.name == "deploy")
    return job.created_at, job.started_at


async def _advance_until(world: World, clock: ManualClock, done: Callable[[], bool]) -> None:
    """Move the clock from one visible change to the next until `done()` holds."""
    for _ in range(500):
        if done():
            return
        moment = world.next_change_at()
        assert moment is not None, "the world stopped changing first"
        clock.set(moment)
    raise AssertionError("never happened")


async def test_a_run_with_an_environment_creates_a_deployment_that_follows_it(
    api: httpx.AsyncClient, world: World, clock: ManualClock, schema: SchemaCheck
) -> None:
    before = max(item.id for item in world.deployments(REPO))
    run = world.push(REPO, "staging", message="Ship invoices")
    await _advance_until(world, clock, lambda: world.actions_deployment(run) is not None)
    deployment = world.actions_deployment(run)
    assert deployment is not None and deployment.id > before
    response = await api.get(f"/repos/{REPO}/deployments", params={"environment": "staging"})
    schema(DEPLOYMENTS, "get", 200, response.json())
    newest = response.json()[0]
    assert newest["id"] == deployment.id
    assert newest["creator"]["login"] == "github-actions[bot]"
    assert newest["creator"]["type"] == "Bot"
    assert (newest["ref"], newest["sha"], newest["task"], newest["payload"]) == (
        "staging",
        run.head_sha,
        "deploy",
        {},
    )
    seen = []
    while world.run_status(run).status != "completed":
        statuses = (await api.get(f"/repos/{REPO}/deployments/{deployment.id}/statuses")).json()
        schema(STATUSES, "get", 200, statuses)
        if not seen or seen[-1] != statuses[0]["state"]:
            seen.append(statuses[0]["state"])
            assert statuses[0]["log_url"] == f"https://github.com/{REPO}/actions/runs/{run.id}"
        clock.set(world.next_change_at())  # type: ignore[arg-type]
    final = (await api.get(f"/repos/{REPO}/deployments/{deployment.id}/statuses")).json()
    assert seen == ["queued", "in_progress"]
    assert [status["state"] for status in final] == ["success", "in_progress", "queued"]
    assert final[0]["created_at"] == world.run_status(run).updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    created, started = _deploy_job_moments(world, run)
    assert [status["created_at"] for status in final[1:]] == [
        started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]

    # A rollback (dispatched on main) deploys as its own deployment; the one it supersedes
    # becomes inactive once it succeeds. A cancelled one ends `failure` (no cancelled state).
    live = [item for item in world.deployments(REPO, environment="production")]
    previous = next(item for item in live if item.state == "success")
    rollback = world.dispatch(
        REPO, "deploy.yml", "main", {"sha": world.environment(REPO, "production").retained[-1]}
    )
    await _advance_until(world, clock, lambda: world.run_status(rollback).status == "completed")
    made = world.actions_deployment(rollback)
    assert made is not None and made.ref == "main" and made.state == "success"
    assert [status.state for status in previous.statuses[-2:]] == ["success", "inactive"]
    cancelled = world.push(REPO, "staging")
    await _advance_until(
        world,
        clock,
        lambda: (
            world.jobs(cancelled)[-1].name == "deploy"
            and world.jobs(cancelled)[-1].status == "in_progress"
        ),
    )
    world.cancel(cancelled, force=True)
    await _advance_until(world, clock, lambda: world.run_status(cancelled).status == "completed")
    stopped = world.actions_deployment(cancelled)
    assert stopped is not None and [s.state for s in stopped.statuses] == [
        "queued",
        "in_progress",
        "failure",
    ]


async def test_a_run_that_never_reaches_its_deploy_job_creates_no_deployment(
    world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging", scenario="buildpack_no_procfile")
    await _advance_until(world, clock, lambda: world.run_status(run).status == "completed")
    assert world.actions_deployment(run) is None
    assert all(item.run_id != run.id for item in world.deployments(REPO))
