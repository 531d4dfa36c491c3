"""The contents API and the user's repos: the sandbox answers in GitHub's published shapes, and
the client reads files (base64, blob SHA, a free 304 when unchanged, None when missing)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from vmkit_tui.domain.secret import Secret
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.repo_files import repo_files
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import GitHubClient

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"


@pytest.fixture
def files(sandbox: GitHubSandbox, world: World) -> dict[str, dict[str, str]]:
    found = repo_files(world, lambda vm: "127.0.0.1:2201", "deploy", Path("/keys/id"))
    sandbox.files = found
    return found


@pytest.fixture
async def client(sandbox: GitHubSandbox) -> AsyncIterator[GitHubClient]:
    async with GitHubClient(sandbox.base_url, Secret(SANDBOX_TOKEN)) as github:
        yield github


async def test_contents_and_user_repos_match_githubs_schemas(
    api: httpx.AsyncClient,
    files: dict[str, dict[str, str]],
    schema: Callable[[str, str, int, Any], None],
) -> None:
    reply = await api.get(f"/repos/{REPO}/contents/config/deploy.yml", params={"ref": "main"})
    assert reply.status_code == 200
    schema("/repos/{owner}/{repo}/contents/{path}", "get", 200, reply.json())
    assert base64.b64decode(reply.json()["content"]).decode() == files[REPO]["config/deploy.yml"]
    missing = await api.get(f"/repos/{REPO}/contents/config/deploy.nowhere.yml")
    assert missing.status_code == 404
    schema("/repos/{owner}/{repo}/contents/{path}", "get", 404, missing.json())
    repos = await api.get("/user/repos")
    assert repos.status_code == 200
    schema("/user/repos", "get", 200, repos.json())
    assert [r["full_name"] for r in repos.json()] == [REPO]


async def test_client_reads_a_file_then_gets_a_free_304(
    client: GitHubClient, sandbox: GitHubSandbox, files: dict[str, dict[str, str]]
) -> None:
    first = await client.get_file(REPO, "config/deploy.staging.yml", ref="main")
    assert first is not None and first.text == files[REPO]["config/deploy.staging.yml"]
    again = await client.get_file(REPO, "config/deploy.staging.yml", ref="main")
    assert again == first
    statuses = [r.status for r in sandbox.requests if "/contents/" in r.path]
    assert statuses == [200, 304]
    files[REPO]["config/deploy.staging.yml"] += "# changed\n"
    changed = await client.get_file(REPO, "config/deploy.staging.yml", ref="main")
    assert changed is not None and changed.sha != first.sha
    assert await client.get_file(REPO, "Dockerfile") is None
    assert [w.file_name for w in await client.workflows(REPO)] == ["deploy.yml"]
    assert [r.full_name for r in await client.user_repos()] == [REPO]
