"""The deployments side of GitHubClient against the sandbox GitHub (real HTTP on 127.0.0.1): a
created deployment is listed newest first and an unchanged list costs nothing; a create or a
status whose answer is lost is looked up, never written twice; a read-only token is refused
with GitHub's 403."""

from __future__ import annotations

import pytest

from tests.integration.test_github_client import SimTime, make_client
from vmkit_tui.sandbox.servers.faults import Fault, FaultKind
from vmkit_tui.sandbox.servers.github_deployments import SANDBOX_READONLY_TOKEN
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import AuthError, GitHubClient

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
ENV = "staging"


@pytest.fixture
def sim(clock: ManualClock) -> SimTime:
    return SimTime(clock)


def sha_of(world: World) -> str:
    return world.runs(REPO)[0].head_sha


async def create(github: GitHubClient, world: World, deploy_id: str = "0123456789ab") -> int:
    made = await github.create_deployment(
        REPO,
        sha=sha_of(world),
        environment=ENV,
        task="deploy:rollback",
        payload={"vmkit_deploy_id": deploy_id, "actor": "alice"},
        description="Roll back staging (manual, alice)",
    )
    assert made.payload["vmkit_deploy_id"] == deploy_id and made.task == "deploy:rollback"
    return made.id


def ours(world: World, deploy_id: str = "0123456789ab") -> list[int]:
    return [
        d.id
        for d in world.deployments(REPO, environment=ENV)
        if isinstance(d.payload, dict) and d.payload.get("vmkit_deploy_id") == deploy_id
    ]


async def test_created_listed_newest_first_and_an_unchanged_list_is_free(
    sandbox: GitHubSandbox, sim: SimTime, world: World
) -> None:
    async with make_client(sandbox, sim) as github:
        first = await create(github, world, "aaaaaaaaaaaa")
        second = await create(github, world, "bbbbbbbbbbbb")
        listed = await github.list_deployments(REPO, ENV)
        assert [d.id for d in listed][:2] == [second, first] and second > first
        counted = github.stats.counted
        assert await github.list_deployments(REPO, ENV) == listed
        assert github.stats.counted == counted  # a 304
        status = await github.create_status(REPO, first, "in_progress", description="Running: x")
        statuses = await github.list_statuses(REPO, first)
        assert [s.id for s in statuses] == [status.id] and statuses[0].state == "in_progress"


async def test_a_lost_answer_is_looked_up_not_written_twice(
    sandbox: GitHubSandbox, sim: SimTime, world: World
) -> None:
    lost_create = Fault(FaultKind.DISPATCH_LOST, "POST", f"/repos/{REPO}/deployments", 1)
    sandbox.faults.add(lost_create)
    async with make_client(sandbox, sim) as github:
        made = await create(github, world)
        assert lost_create.exhausted and ours(world) == [made]
        lost_status = Fault(FaultKind.DISPATCH_LOST, "POST", "*/statuses", 1)
        sandbox.faults.add(lost_status)
        await github.create_status(REPO, made, "in_progress", description="Running: once")
        assert lost_status.exhausted
        assert len(await github.list_statuses(REPO, made)) == 1


async def test_a_read_only_token_gets_a_403(
    sandbox: GitHubSandbox, sim: SimTime, world: World
) -> None:
    async with make_client(sandbox, sim, SANDBOX_READONLY_TOKEN) as github:
        assert isinstance(await github.list_deployments(REPO, ENV), list)  # reading is allowed
        with pytest.raises(AuthError) as refused:
            await create(github, world)
        assert refused.value.status == 403
    assert ours(world) == []
