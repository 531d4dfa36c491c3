"""The sandbox GitHub server over real HTTP: shapes (validated against GitHub's published
schemas), pagination, ETags, the log redirect, cancel, dispatch, compare, filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
RUNS = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"
SchemaCheck = Callable[[str, str, int, Any], None]


def _links(response: httpx.Response) -> dict[str, str]:
    found = {}
    for part in response.headers.get("link", "").split(","):
        if part.strip():
            url, rel = part.split(";")
            found[rel.strip().removeprefix('rel="').rstrip('"')] = url.strip().strip("<>")
    return found


async def test_every_endpoint_validates_against_githubs_schemas(
    api: httpx.AsyncClient, world: World, clock: ManualClock, schema: SchemaCheck
) -> None:
    run = world.push(REPO, "staging", message="Add due_date to invoices")
    clock.advance(40)  # building: a run and a job in progress, steps in every state
    repo = world.repo(REPO)

    response = await api.get(f"/repos/{REPO}/actions/runs")
    assert response.status_code == 200
    schema("/repos/{owner}/{repo}/actions/runs", "get", 200, response.json())
    response = await api.get(
        f"/repos/{REPO}/actions/workflows/deploy.yml/runs", params={"branch": "staging"}
    )
    body = response.json()
    schema(RUNS, "get", 200, body)
    newest = body["workflow_runs"][0]
    assert (
        newest["id"] == run.id
        and newest["status"] == "in_progress"
        and newest["conclusion"] is None
    )
    assert (
        newest["head_sha"] == run.head_sha and newest["display_title"] == "Add due_date to invoices"
    )
    assert newest["actor"]["login"] == run.actor and newest["repository"]["full_name"] == REPO
    assert newest["url"].startswith(str(api.base_url).rstrip("/"))
    assert newest["html_url"] == f"https://github.com/{REPO}/actions/runs/{run.id}"

    response = await api.get(f"/repositories/{repo.id}/actions/runs/{run.id}")
    schema("/repos/{owner}/{repo}/actions/runs/{run_id}", "get", 200, response.json())
    response = await api.get(f"/repos/{REPO}/actions/runs/{run.id}/attempts/1")
    schema(
        "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}",
        "get",
        200,
        response.json(),
    )

    response = await api.get(f"/repos/{REPO}/actions/runs/{run.id}/jobs")
    jobs = response.json()
    schema("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", "get", 200, jobs)
    steps = jobs["jobs"][0]["steps"]
    assert {step["status"] for step in steps} == {"completed", "in_progress", "queued"}
    response = await api.get(f"/repos/{REPO}/actions/jobs/{jobs['jobs'][0]['id']}")
    schema("/repos/{owner}/{repo}/actions/jobs/{job_id}", "get", 200, response.json())

    response = await api.get(f"/repos/{REPO}/actions/workflows")
    schema("/repos/{owner}/{repo}/actions/workflows", "get", 200, response.json())
    response = await api.get(f"/repos/{REPO}/actions/workflows/deploy.yml")
    schema("/repos/{owner}/{repo}/actions/workflows/{workflow_id}", "get", 200, response.json())
    assert response.json()["path"] == ".github/workflows/deploy.yml"

    live = world.environment(REPO, "production").live_sha
    response = await api.get(f"/repos/{REPO}/compare/{live}...staging")
    schema("/repos/{owner}/{repo}/compare/{basehead}", "get", 200, response.json())
    response = await api.get(f"/repos/{REPO}/commits/{run.head_sha}")
    schema("/repos/{owner}/{repo}/commits/{ref}", "get", 200, response.json())

    response = await api.get(f"/orgs/acme/packages/container/{repo.package_name}/versions")
    schema(
        "/orgs/{org}/packages/{package_type}/{package_name}/versions", "get", 200, response.json()
    )
    response = await api.get(f"/users/acme/packages/container/{repo.package_name}/versions")
    schema(
        "/users/{username}/packages/{package_type}/{package_name}/versions",
        "get",
        200,
        response.json(),
    )
    response = await api.get("/rate_limit")
    schema("/rate_limit", "get", 200, response.json())

    response = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/cancel")
    assert response.status_code == 202
    schema("/repos/{owner}/{repo}/actions/runs/{run_id}/cancel", "post", 202, response.json())
    clock.advance(60)
    response = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/cancel")
    assert response.status_code == 409
    schema("/repos/{owner}/{repo}/actions/runs/{run_id}/cancel", "post", 409, response.json())
    response = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/force-cancel")
    assert response.status_code == 409
    schema("/repos/{owner}/{repo}/actions/runs/{run_id}/force-cancel", "post", 409, response.json())

    response = await api.post(
        f"/repos/{REPO}/actions/workflows/deploy.yml/dispatches",
        json={
            "ref": "main",
            "inputs": {"sha": live, "environment": "production"},
            "return_run_details": True,
        },
    )
    assert response.status_code == 200
    schema(
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
        "post",
        200,
        response.json(),
    )


async def test_completed_runs_and_jobs_validate_too(
    api: httpx.AsyncClient, world: World, clock: ManualClock, schema: SchemaCheck
) -> None:
    """Every outcome (failures, cancels, skipped jobs, rollbacks) renders valid shapes."""
    world.push(REPO, "staging", scenario="buildpack_no_procfile")
    world.cancel(world.push(REPO, "production"))
    world.dispatch(
        REPO, "deploy.yml", "main", {"sha": world.environment(REPO, "production").retained[-1]}
    )
    clock.advance(900)
    response = await api.get(f"/repos/{REPO}/actions/runs", params={"per_page": 100})
    body = response.json()
    schema("/repos/{owner}/{repo}/actions/runs", "get", 200, body)
    conclusions = {run["conclusion"] for run in body["workflow_runs"]}
    assert {"success", "failure", "cancelled"} <= conclusions
    assert {"push", "workflow_dispatch"} == {run["event"] for run in body["workflow_runs"]}
    for item in body["workflow_runs"]:
        jobs = (await api.get(f"/repos/{REPO}/actions/runs/{item['id']}/jobs")).json()
        schema("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", "get", 200, jobs)
        assert jobs["total_count"] == len(jobs["jobs"]) >= 1


async def test_pagination_follows_github_link_headers(api: httpx.AsyncClient, world: World) -> None:
    total = len(world.runs(REPO))
    response = await api.get(
        f"/repos/{REPO}/actions/workflows/deploy.yml/runs", params={"per_page": 3}
    )
    assert response.json()["total_count"] == total
    links = _links(response)
    assert set(links) == {"next", "last"}
    repo_id = world.repo(REPO).id
    assert (
        urlsplit(links["next"]).path == f"/repositories/{repo_id}/actions/workflows/deploy.yml/runs"
    )
    assert parse_qs(urlsplit(links["next"]).query) == {"per_page": ["3"], "page": ["2"]}
    seen = [run["id"] for run in response.json()["workflow_runs"]]
    pages = 1
    while "next" in (links := _links(response)):
        response = await api.get(links["next"])  # verbatim, as clients must
        assert response.status_code == 200
        seen += [run["id"] for run in response.json()["workflow_runs"]]
        pages += 1
    assert pages == -(-total // 3)
    assert set(_links(response)) == {"prev", "first"}
    assert len(seen) == len(set(seen)) == total
    assert seen == [run.id for run in world.runs(REPO)]  # newest first
    capped = await api.get(f"/repos/{REPO}/actions/runs", params={"per_page": 500})
    assert len(capped.json()["workflow_runs"]) == min(100, total)
    single = await api.get(f"/repos/{REPO}/actions/runs", params={"per_page": 100})
    assert "link" not in single.headers


async def test_etag_gives_a_bodiless_304_that_costs_no_rate_budget(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World, clock: ManualClock
) -> None:
    url = f"/repos/{REPO}/actions/workflows/deploy.yml/runs"
    first = await api.get(url, params={"branch": "main"})
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    remaining = int(first.headers["x-ratelimit-remaining"])
    for header in (etag, f"W/{etag}"):
        again = await api.get(url, params={"branch": "main"}, headers={"If-None-Match": header})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert int(again.headers["x-ratelimit-remaining"]) == remaining
    assert [r.counted for r in sandbox.requests] == [True, False, False]
    world.push(REPO, "production")
    clock.advance(5)
    changed = await api.get(url, params={"branch": "main"}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert int(changed.headers["x-ratelimit-remaining"]) == remaining - 1


async def test_job_logs_404_while_running_then_302_to_a_short_lived_url(
    api: httpx.AsyncClient, sandbox: GitHubSandbox, world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    clock.advance(20)
    job = world.jobs(run)[0]
    running = await api.get(f"/repos/{REPO}/actions/jobs/{job.id}/logs")
    assert running.status_code == 404
    while world.jobs(run)[0].status != "completed":
        clock.advance(5)
    redirect = await api.get(f"/repos/{REPO}/actions/jobs/{job.id}/logs")
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert urlsplit(location).path.startswith("/_blob/") and "sig=" in location
    async with httpx.AsyncClient() as anonymous:  # no token: the URL's signature is the credential
        log = await anonymous.get(location)
        assert log.status_code == 200
        assert log.headers["content-type"].startswith("text/plain")
        assert log.text.startswith("\ufeff") and "##[group]" in log.text
        assert log.text == world.job_log(job.id)
        clock.advance(61)
        expired = await anonymous.get(location)
        assert expired.status_code == 403 and "AuthenticationFailed" in expired.text
        forged = await anonymous.get(location.replace("sig=", "sig=x"))
        assert forged.status_code == 403
    blob_requests = [r for r in sandbox.requests if r.path.startswith("/_blob/")]
    assert len(blob_requests) == 3 and not any(r.authorized for r in blob_requests)
    assert not any(r.counted for r in blob_requests)
    leaked = await api.get(location)  # a careless client forwards its token: it is recorded
    assert leaked.status_code == 403
    assert sandbox.requests[-1].authorized


async def test_cancel_is_accepted_then_the_run_ends_cancelled(
    api: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    run = world.push(REPO, "staging")
    clock.advance(30)
    response = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/cancel")
    assert response.status_code == 202 and response.json() == {}
    state = (await api.get(f"/repos/{REPO}/actions/runs/{run.id}")).json()
    assert state["status"] == "in_progress"  # asynchronous, like GitHub
    clock.advance(10)
    state = (await api.get(f"/repos/{REPO}/actions/runs/{run.id}")).json()
    assert (state["status"], state["conclusion"]) == ("completed", "cancelled")
    again = await api.post(f"/repos/{REPO}/actions/runs/{run.id}/cancel")
    assert again.status_code == 409
    assert again.json()["message"] == "Cannot cancel a workflow run that is completed."
    missing = await api.post(f"/repos/{REPO}/actions/runs/1/cancel")
    assert missing.status_code == 404


async def test_dispatch_refuses_a_sha_ref_and_returns_run_details_when_asked(
    api: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    sha = world.environment(REPO, "production").retained[-1]
    url = f"/repos/{REPO}/actions/workflows/deploy.yml/dispatches"
    refused = await api.post(url, json={"ref": sha, "inputs": {"sha": sha}})
    assert refused.status_code == 422
    assert refused.json()["message"] == f"No ref found for: {sha}"
    unexpected = await api.post(url, json={"ref": "main", "inputs": {"sha": sha, "force": "yes"}})
    assert (
        unexpected.status_code == 422
        and "Unexpected inputs provided" in unexpected.json()["message"]
    )
    no_ref = await api.post(url, json={"inputs": {"sha": sha}})
    assert no_ref.status_code == 422
    quiet = await api.post(
        url, json={"ref": "main", "inputs": {"sha": sha, "request_id": "0a1b2c3d4e5f"}}
    )
    assert quiet.status_code == 204 and quiet.content == b""
    detailed = await api.post(
        url,
        json={
            "ref": "main",
            "inputs": {"sha": sha, "environment": "production", "request_id": "f0e1d2c3b4a5"},
            "return_run_details": True,
        },
    )
    assert detailed.status_code == 200
    details = detailed.json()
    run_id = details["workflow_run_id"]
    assert details["run_url"].endswith(f"/repos/{REPO}/actions/runs/{run_id}")
    assert details["html_url"] == f"https://github.com/{REPO}/actions/runs/{run_id}"
    listed = (
        await api.get(url.replace("/dispatches", "/runs"), params={"event": "workflow_dispatch"})
    ).json()
    assert run_id not in [run["id"] for run in listed["workflow_runs"]]  # shows up a moment later
    clock.advance(3)
    listed = (
        await api.get(url.replace("/dispatches", "/runs"), params={"event": "workflow_dispatch"})
    ).json()
    titles = {run["id"]: run["display_title"] for run in listed["workflow_runs"]}
    assert "f0e1d2c3b4a5" in titles[run_id]
    assert any("0a1b2c3d4e5f" in title for title in titles.values())
    run = (await api.get(f"/repos/{REPO}/actions/runs/{run_id}")).json()
    assert run["event"] == "workflow_dispatch" and run["head_branch"] == "main"
    newer = await api.post(
        url,
        json={"ref": "main", "inputs": {"sha": sha}},
        headers={"X-GitHub-Api-Version": "2026-03-10"},
    )
    assert newer.status_code == 200 and "workflow_run_id" in newer.json()


async def test_dispatch_without_run_details_support_like_older_ghes(
    world: World, auth: dict[str, str]
) -> None:
    server = GitHubSandbox(world, dispatch_run_details=False)
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            sha = world.environment(REPO, "production").live_sha
            url = f"/repos/{REPO}/actions/workflows/deploy.yml/dispatches"
            body = {"ref": "main", "inputs": {"sha": sha}, "return_run_details": True}
            rejected = await client.post(url, json=body)
            assert (
                rejected.status_code == 422 and "return_run_details" in rejected.json()["message"]
            )
            del body["return_run_details"]
            assert (await client.post(url, json=body)).status_code == 204
    finally:
        await server.stop()


async def test_run_filters_match_githubs(
    api: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    url = f"/repos/{REPO}/actions/workflows/deploy.yml/runs"
    run = world.push(REPO, "staging")
    clock.advance(5)

    async def ids(**params: str) -> list[int]:
        response = await api.get(url, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["workflow_runs"]]

    assert await ids(head_sha=run.head_sha) == [run.id]
    assert await ids(head_sha=run.head_sha[:10]) == []  # exact match only
    assert len(await ids(head_sha="")) == min(30, len(world.runs(REPO)))  # empty: no filter
    assert await ids(status="in_progress") == [run.id]
    completed = await ids(status="completed", per_page="100")
    assert run.id not in completed and len(completed) == len(world.runs(REPO)) - 1
    failures = await ids(status="failure", per_page="100")
    assert failures and all(
        world.run_status(world.run(i)).conclusion == "failure" for i in failures
    )
    assert set(await ids(branch="staging", per_page="100")) == {
        r.id for r in world.runs(REPO) if r.head_branch == "staging"
    }
    recent = (clock.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids(created=f">={recent}") == [run.id]
    today = world.created_at.strftime("%Y-%m-%d")
    assert run.id in await ids(created=today)
    assert await ids(created=f"<{today}", per_page="100") == [
        r.id for r in world.runs(REPO) if r.created_at < world.created_at.replace(hour=0)
    ]
    assert (await api.get(url, params={"created": "yesterday"})).status_code == 422
    assert (await api.get(f"/repos/{REPO}/actions/workflows/nope.yml/runs")).status_code == 404
    assert (await api.get(f"/repos/{REPO}/actions/runs/")).status_code == 404  # trailing slash


async def test_compare_and_commits(
    api: httpx.AsyncClient, world: World, clock: ManualClock
) -> None:
    migration = "alembic/versions/9a8b7c6d5e4f_drop_code_from_coupons.py"
    base = world.environment(REPO, "production").live_sha
    run = world.push(
        REPO, "production", message="Drop legacy coupons.code column", files=(migration,)
    )
    compare = (await api.get(f"/repos/{REPO}/compare/{base}...{run.sha}")).json()
    assert compare["status"] == "ahead" and compare["behind_by"] == 0
    assert compare["commits"][-1]["sha"] == run.sha
    assert compare["total_commits"] == compare["ahead_by"] == len(compare["commits"])
    files = {item["filename"]: item["status"] for item in compare["files"]}
    assert files[migration] == "added"
    behind = (await api.get(f"/repos/{REPO}/compare/{run.sha}...{base}")).json()
    assert behind["status"] == "behind" and behind["files"] == []
    diverged = (await api.get(f"/repos/{REPO}/compare/hotfix/checkout-timeout...main")).json()
    assert diverged["status"] == "diverged"
    paged = await api.get(
        f"/repos/{REPO}/compare/{base}...{run.sha}", params={"per_page": 1, "page": 2}
    )
    if compare["ahead_by"] > 1:
        assert paged.json()["files"] == [] and len(paged.json()["commits"]) == 1
    assert (await api.get(f"/repos/{REPO}/compare/{'0' * 40}...{base}")).status_code == 404
    commit = (await api.get(f"/repos/{REPO}/commits/{run.sha}")).json()
    assert (
        commit["sha"] == run.sha
        and commit["commit"]["message"] == "Drop legacy coupons.code column"
    )
    assert [item["filename"] for item in commit["files"]] == [migration]
    assert commit["stats"]["total"] == commit["files"][0]["changes"]
    missing = await api.get(f"/repos/{REPO}/commits/{'f' * 40}")
    assert (
        missing.status_code == 422
        and missing.json()["message"] == f"No commit found for SHA: {'f' * 40}"
    )
    assert (await api.get(f"/repos/{REPO}/commits/{run.sha[:7]}")).json()["sha"] == run.sha


async def test_package_versions_need_the_url_encoded_name(
    clock: ManualClock, schema: SchemaCheck, auth: dict[str, str]
) -> None:
    world = World.seeded(
        7, clock, profile="demo"
    )  # billing-api's image is ghcr.io/acme/billing-api/web
    server = GitHubSandbox(world)
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            repo = world.repo("acme/billing-api")
            assert repo.package_name == "billing-api/web"
            tags = world.image_tags(repo)
            found: set[str] = set()
            url: str | None = (
                "/orgs/acme/packages/container/billing-api%2Fweb/versions?per_page=100"
            )
            while url:
                response = await client.get(url)
                assert response.status_code == 200
                schema(
                    "/orgs/{org}/packages/{package_type}/{package_name}/versions",
                    "get",
                    200,
                    response.json(),
                )
                for version in response.json():
                    found.update(version["metadata"]["container"]["tags"])
                url = _links(response).get("next")
            assert found == tags
            deleted = [sha for sha in world._image_deleted["acme/billing-api"] if sha not in tags]
            assert deleted and not set(deleted) & found  # images gone from GHCR are not listed
            raw = await client.get("/orgs/acme/packages/container/billing-api/web/versions")
            assert raw.status_code == 404
            unknown = await client.get("/orgs/acme/packages/container/nope/versions")
            assert unknown.status_code == 404
    finally:
        await server.stop()
