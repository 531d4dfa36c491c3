"""Helpers for the deploy-action tests: the sandbox GitHub (real HTTP) and VMs (real SSH) on
127.0.0.1 over one `ManualClock` world, a config pointing at them, the world's past recorded by
one tracking round, and tracking run afterwards to see how an action really ended.

Time: the test drives the clock (`drive`); the client's and the actions' own waits move it on
by what they wait (`SimTime`), so minutes of simulated deploy take well under a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from tests.integration.tracking_fixtures import Recorder, SimTime
from tests.integration.vm_helpers import FAST
from vmkit_tui.actions.base import ActionTiming
from vmkit_tui.actions.deploy_actions import DeployActions
from vmkit_tui.config import (
    Config,
    EnvironmentConfig,
    GitHubConfig,
    HostSpec,
    RepoConfig,
    RollbackStrategy,
)
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import Broadcaster, DeployChanged, Update
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.polling import TrackingTiming
from vmkit_tui.tracking.tracker import EnvironmentTracker

REPO = "acme/my-fastapi-app"
IMAGE = "ghcr.io/acme/my-fastapi-app"
WAIT_S = 20.0  # real seconds any single wait may take

T = TypeVar("T")


def environment(
    world: World, vms: VmSandbox, name: str, strategy: RollbackStrategy
) -> EnvironmentConfig:
    """The world's environment as a config names it: hosts, deploy host, keys, service."""
    env = world.environment(REPO, name)
    return EnvironmentConfig(
        name,
        workflow="deploy.yml",
        branch=env.branch,
        rollback=strategy,
        hosts=tuple(HostSpec.parse(vms.host_spec(vm)) for vm in env.vm_names),
        deploy_host=HostSpec.parse(vms.host_spec(env.deploy_host)),
        identity_file=vms.client_key_path,
        known_hosts=vms.known_hosts_path,
        service=env.service,
        destination=name,  # the sandbox's containers carry the environment as destination
    )


def make_config(
    world: World,
    sandbox: GitHubSandbox,
    vms: VmSandbox,
    strategy: RollbackStrategy = RollbackStrategy.GITHUB,
) -> Config:
    envs = tuple(environment(world, vms, name, strategy) for name in ("production", "staging"))
    return Config(
        source=None,
        github=GitHubConfig(api_url=sandbox.base_url, token=Secret(SANDBOX_TOKEN)),
        repos=(RepoConfig(REPO, IMAGE, envs),),
    )


def make_client(sandbox: GitHubSandbox, clock: ManualClock) -> GitHubClient:
    return GitHubClient(
        sandbox.base_url,
        Secret(SANDBOX_TOKEN),
        clock=lambda: clock.now().timestamp(),
        sleep=SimTime(clock).sleep,
        dispatch_poll_interval=1.0,
    )


def make_actions(
    config: Config,
    history: History,
    github: GitHubClient | None,
    data_dir: Path,
    updates: Broadcaster,
    clock: ManualClock,
) -> DeployActions:
    return DeployActions(
        config,
        AsyncHistory(history),
        github,
        data_dir,
        updates,
        now=clock.now,
        ssh_options=FAST,
        timing=ActionTiming(sleep=SimTime(clock).sleep, vm_grace=0.2),
    )


class _Quiet:
    """A tracking sink that ignores everything (only the history matters here)."""

    def publish(self, update: Update) -> None:
        pass

    async def deploy_started(self, record: DeployRecord) -> None:
        pass

    async def deploy_finished(self, record: DeployRecord) -> None:
        pass


async def record_past(
    config: Config, history: History, github: GitHubClient, data_dir: Path, clock: ManualClock
) -> None:
    """What tracking records in its first round: every environment's past, with statuses."""
    for env in config.repo(REPO).environments:
        tracker = EnvironmentTracker(
            REPO,
            env,
            github,
            AsyncHistory(history),
            data_dir,
            _Quiet(),
            now=clock.now,
            timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
        )
        await tracker.poll()


@asynccontextmanager
async def acting(
    config: Config,
    history: History,
    sandbox: GitHubSandbox,
    clock: ManualClock,
    data_dir: Path,
    updates: Broadcaster,
) -> AsyncIterator[tuple[GitHubClient, DeployActions]]:
    """The world's past recorded in `history`, then the client and the actions the tests use
    (closed afterwards)."""
    async with make_client(sandbox, clock) as client:
        await record_past(config, history, client, data_dir, clock)
        actions = make_actions(config, history, client, data_dir, updates, clock)
        try:
            yield client, actions
        finally:
            await actions.aclose()


async def drive(
    clock: ManualClock, work: Awaitable[T], *, step: float = 0.5, timeout: float = WAIT_S
) -> T:
    """Await `work` while simulated time runs on (`step` seconds per loop turn): Kamal over
    SSH and the sandbox's runs only move when the clock does."""
    task = asyncio.ensure_future(work)
    async with asyncio.timeout(timeout):
        while not task.done():
            clock.advance(step)
            await asyncio.sleep(0.01)  # let the loop run between clock steps (bounded by timeout)
    return task.result()


async def eventually(
    probe: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT_S
) -> None:
    """Poll an async condition until it holds (real time bounded)."""
    try:
        async with asyncio.timeout(timeout):
            while not await probe():
                await asyncio.sleep(0.02)  # poll interval of the condition wait
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def tracked_to_the_end(
    config: Config, history: History, data_dir: Path, clock: ManualClock, deploy_id: str
) -> DeployRecord:
    """Run tracking (in virtual time) until the deploy reaches a final status."""
    service = DeployService(
        config,
        AsyncHistory(history),
        data_dir,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
        ssh_options=FAST,
    )
    async with service.updates.subscription() as queue:
        recorder = Recorder(queue)
        async with service:
            done = await recorder.wait(
                lambda u: (
                    isinstance(u, DeployChanged)
                    and u.record.id == deploy_id
                    and u.record.status.is_final
                )
            )
    assert isinstance(done, DeployChanged)
    return done.record
