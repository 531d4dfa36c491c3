"""Rollback eligibility against the sandbox: `docker container ls` over real SSH on each host,
GHCR's package versions over real HTTP. The demo world has a production environment on two
hosts, one of which had a kept container removed by hand; deploys prune containers beyond
five, images can be deleted, a host can go offline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.integration.tracking_fixtures import SimTime
from tests.integration.vm_helpers import FAST
from tests.unit.history_samples import T0, make_deploy
from tests.unit.test_world import finish
from vmkit_tui.config import Config, EnvironmentConfig, GitHubConfig, HostSpec, RepoConfig
from vmkit_tui.domain.eligibility import Eligibility
from vmkit_tui.domain.models import DeployEvent, DeployRecord, EventKind, Status
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import (
    Broadcaster,
    DeployChanged,
    DeploysPruned,
    EligibilityChanged,
    Update,
)
from vmkit_tui.sandbox.servers.faults import RecordedRequest
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.tracking.eligibility import EligibilityRefresher

pytest_plugins = ["tests.integration.sandbox_fixtures", "tests.integration.vm_fixtures"]
pytestmark = pytest.mark.timeout(90)

REPO = "acme/storefront"


@pytest.fixture
def world(clock: ManualClock) -> World:
    """The demo world: its production runs on two hosts, one with a container removed by hand."""
    return World.seeded(7, clock, profile="demo")


@dataclass
class Facts:
    world: World
    clock: ManualClock
    sandbox: GitHubSandbox
    vms: VmSandbox
    refresher: EligibilityRefresher

    def state(self, environment: str, sha: str) -> Eligibility:
        return self.refresher.of(REPO, environment, sha).state

    def versions_on(self, vm: str) -> set[str]:
        return {container.sha for container in self.world.containers(vm)}


def _config(world: World, sandbox: GitHubSandbox, vms: VmSandbox) -> Config:
    envs = []
    for name in ("production", "staging"):
        env = world.environment(REPO, name)
        envs.append(
            EnvironmentConfig(
                name,
                hosts=tuple(HostSpec.parse(vms.host_spec(vm)) for vm in env.vm_names),
                identity_file=vms.client_key_path,
                known_hosts=vms.known_hosts_path,
                service=env.service,
                destination=name,
            )
        )
    image = world.repo(REPO).image
    return Config(
        source=None,
        github=GitHubConfig(api_url=sandbox.base_url, token=Secret(SANDBOX_TOKEN)),
        repos=(RepoConfig(REPO, image, tuple(envs)),),
    )


@pytest.fixture
async def facts(
    world: World, clock: ManualClock, sandbox: GitHubSandbox, vms: VmSandbox
) -> AsyncIterator[Facts]:
    async with GitHubClient(
        sandbox.base_url,
        Secret(SANDBOX_TOKEN),
        clock=lambda: clock.now().timestamp(),
        sleep=SimTime(clock).sleep,
    ) as client:
        refresher = EligibilityRefresher(
            _config(world, sandbox, vms), client, FAST, Broadcaster(), clock.now
        )
        yield Facts(world, clock, sandbox, vms, refresher)


async def test_the_host_a_container_was_removed_from_is_named(facts: Facts) -> None:
    env = facts.world.environment(REPO, "production")
    first, second = env.vm_names
    removed = facts.versions_on(first) - facts.versions_on(second)
    assert len(removed) == 1  # the seeded `docker rm` by hand
    sha = removed.pop()
    await facts.refresher.refresh(REPO)

    found = facts.refresher.of(REPO, "production", sha)
    assert found.state is Eligibility.IN_REGISTRY
    assert found.missing_on == (facts.vms.host_spec(second),)
    assert f"no container on {facts.vms.host_spec(second)};" in found.reason
    assert facts.state("production", env.live_sha or "") is Eligibility.RETAINED


async def test_eligibility_follows_pruning_and_deleted_images(facts: Facts) -> None:
    env = facts.world.environment(REPO, "staging")
    (vm,) = env.vm_names
    kept = env.retained[0]  # the newest version kept as a stopped container
    await facts.refresher.refresh(REPO)
    assert facts.state("staging", kept) is Eligibility.RETAINED

    for _ in range(6):  # each deploy prunes the stopped containers beyond five
        run = facts.world.push(REPO, "staging")
        finish(facts.world, facts.clock, run)
        facts.clock.advance(5)
    assert kept not in facts.versions_on(vm)
    await facts.refresher.refresh(REPO)
    assert facts.state("staging", kept) is Eligibility.IN_REGISTRY

    facts.world.delete_image(REPO, kept)
    listings = len(_package_requests(facts.sandbox))
    await facts.refresher.refresh(REPO)
    found = facts.refresher.of(REPO, "staging", kept)
    assert found.state is Eligibility.GONE
    assert f"no tag {kept[:7]} in GHCR" in found.reason
    assert len(_package_requests(facts.sandbox)) > listings  # one listing, asked again


async def test_an_unchanged_listing_is_asked_conditionally(facts: Facts) -> None:
    await facts.refresher.refresh(REPO)
    before = len(_package_requests(facts.sandbox))
    await facts.refresher.refresh(REPO)
    again = _package_requests(facts.sandbox)[before:]
    assert len({request.query for request in again}) > 1  # every page of the listing, again
    assert all(request.status == 304 for request in again)
    assert all("if-none-match" in {k.lower() for k in request.headers} for request in again)


async def test_an_unreachable_host_makes_it_unknown_naming_the_host(facts: Facts) -> None:
    env = facts.world.environment(REPO, "production")
    facts.world.set_vm_offline(env.vm_names[1], True)
    await facts.refresher.refresh(REPO)
    found = facts.refresher.of(REPO, "production", env.live_sha or "")
    assert found.state is Eligibility.UNKNOWN
    assert f"cannot list containers on {facts.vms.host_spec(env.vm_names[1])}:" in found.reason


async def test_the_loop_refreshes_after_a_deploy_finishes(facts: Facts) -> None:
    refresher = facts.refresher
    env = facts.world.environment(REPO, "staging")
    kept = env.retained[0]
    async with _looping(refresher) as queue:
        assert facts.state("staging", kept) is Eligibility.RETAINED
        facts.world.remove_container(env.vm_names[0], kept)
        facts.world.delete_image(REPO, kept)
        for record in _running_then_finished(REPO, "staging"):
            refresher.updates.publish(DeployChanged(record))
        await _next_eligibility(queue)
        assert facts.state("staging", kept) is Eligibility.GONE


@contextlib.asynccontextmanager
async def _looping(refresher: EligibilityRefresher) -> AsyncIterator[asyncio.Queue[Update]]:
    """The refresh loop running, woken only by a finished deploy, its first refresh done."""
    refresher.interval = 3600.0
    async with refresher.updates.subscription() as queue:
        task = asyncio.create_task(refresher.run())
        try:
            await _next_eligibility(queue)
            yield queue
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_background_refreshes_leave_ghcr_unlisted_while_the_budget_is_low(
    facts: Facts,
) -> None:
    """Below `RateBudget`'s low water the loop still asks the hosts but not GHCR, says so in
    its facts, and lists again after the reset; a refresh someone waits for always lists."""
    refresher, sandbox = facts.refresher, facts.sandbox
    env = facts.world.environment(REPO, "staging")
    (vm,) = env.vm_names
    kept = env.retained[0]
    async with _looping(refresher) as queue:
        assert facts.state("staging", kept) is Eligibility.RETAINED
        # Others spend the hour's budget down to 1 of 10+ requests; the client hears of it.
        sandbox.rate_limit = sandbox.rate_limit - sandbox.rate_remaining() + 10
        assert refresher.github is not None
        for commit in facts.world.repo(REPO).commits[:9]:
            await refresher.github.get_commit(REPO, commit.sha)
        assert sandbox.rate_remaining() == 1
        facts.world.remove_container(vm, kept)
        mark = len(sandbox.requests)
        for record in _running_then_finished(REPO, "staging", 1):
            refresher.updates.publish(DeployChanged(record))
        await _next_eligibility(queue)
        assert not _package_requests(sandbox, mark)
        assert kept not in (refresher.facts[(REPO, "staging")].hosts[0].versions or ())
        found = refresher.of(REPO, "staging", kept)
        assert found.state is Eligibility.UNKNOWN, found
        assert "hourly budget is low (1 of" in found.reason and "deferred until" in found.reason

        await refresher.refresh(REPO, ["staging"])  # a preflight's: it lists (304s)
        await _next_eligibility(queue)  # (its own, already queued)
        assert _package_requests(sandbox, mark)
        assert facts.state("staging", kept) is Eligibility.IN_REGISTRY

        facts.clock.advance(3601)  # the reset: a fresh budget
        mark = len(sandbox.requests)
        for record in _running_then_finished(REPO, "staging", 2):
            refresher.updates.publish(DeployChanged(record))
        await _next_eligibility(queue)
        assert _package_requests(sandbox, mark)
        assert facts.state("staging", kept) is Eligibility.IN_REGISTRY


async def test_a_pruned_deploy_is_forgotten_by_the_refresh_loop(facts: Facts) -> None:
    """What the loop remembers per deploy (seen running, its end already refreshed) goes when
    the history prunes the deploy: it would otherwise grow for as long as the process runs."""
    refresher, queue = facts.refresher, asyncio.Queue[Update]()
    records = _running_then_finished(REPO, "staging")
    other = make_deploy(2, repo=REPO, environment="staging")
    running = DeployEvent("e3", other.id, 1, T0, EventKind.STATUS, Status.RUNNING, "", {})
    for update in [
        *map(DeployChanged, records),
        DeployChanged(DeployRecord.build(other, [running])),
    ]:
        queue.put_nowait(update)
    assert refresher._drain(None, queue, T0) == {REPO}  # the finished one brings a refresh
    assert (refresher._finished, refresher._active) == ({records[0].id}, {other.id})
    queue.put_nowait(DeploysPruned((records[0].id, other.id)))
    assert refresher._drain(None, queue, T0) == set()
    assert (refresher._finished, refresher._active) == (set(), set())


def _running_then_finished(repo: str, environment: str, n: int = 1) -> list[DeployRecord]:
    """Deploy `n` of that environment as tracking publishes it: running, then succeeded."""
    deploy = make_deploy(n, repo=repo, environment=environment)
    running = DeployEvent("e1", deploy.id, 1, T0, EventKind.STATUS, Status.RUNNING, "", {})
    done = DeployEvent("e2", deploy.id, 2, T0, EventKind.STATUS, Status.SUCCEEDED, "", {})
    return [DeployRecord.build(deploy, [running]), DeployRecord.build(deploy, [running, done])]


async def _next_eligibility(queue: asyncio.Queue[Update]) -> None:
    async with asyncio.timeout(20):
        while not isinstance(await queue.get(), EligibilityChanged):
            pass


def _package_requests(sandbox: GitHubSandbox, since: int = 0) -> list[RecordedRequest]:
    return [r for r in sandbox.requests[since:] if "/packages/container/" in r.path]
