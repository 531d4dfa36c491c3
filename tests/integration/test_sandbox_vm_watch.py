"""VmWatcher against the sandbox VMs: a deploy's VM logs reach its spool over real SSH, its
first-healthy moment lands in the history once, and host trouble becomes SourceHealth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from vmkit_tui.config import EnvironmentConfig, HostSpec
from vmkit_tui.domain.event_ids import first_healthy_id
from vmkit_tui.domain.models import Deploy, DeployRecord, EventKind, NewEvent, Status, Trigger
from vmkit_tui.domain.updates import (
    Broadcaster,
    DeployChanged,
    Health,
    LogGrew,
    SourceHealth,
    Update,
)
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.ssh import VMKIT_SOURCE
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import SpoolReader, spool_path
from vmkit_tui.tracking.vm_watch import GRACE_SECONDS, VmWatcher

from .vm_helpers import FAST, REPO, run_world, wait_until

pytest_plugins = ["tests.integration.vm_fixtures"]
pytestmark = pytest.mark.timeout(60)


class Updates:
    """Everything the watcher publishes, collected in the background."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.seen: list[Update] = []
        self._broadcaster = broadcaster
        self._ready = asyncio.Event()
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async with self._broadcaster.subscription() as queue:
            self._ready.set()
            while True:
                self.seen.append(await queue.get())

    async def start(self) -> None:
        await self._ready.wait()

    def health(self, key: str) -> list[SourceHealth]:
        return [u for u in self.seen if isinstance(u, SourceHealth) and u.key == key]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


PODMAN = {"kamal-proxy": "podman logs --follow --timestamps {since} -- kamal-proxy"}


def env_config(world: World, vms: VmSandbox, name: str, **changes: Any) -> EnvironmentConfig:
    hosts = tuple(
        HostSpec.parse(vms.host_spec(vm)) for vm in world.environment(REPO, name).vm_names
    )
    fields: dict[str, Any] = {
        "name": name,
        "hosts": hosts,
        "identity_file": vms.client_key_path,
        "known_hosts": vms.known_hosts_path,
    }
    fields.update(changes)
    return EnvironmentConfig(**fields)


@dataclass
class Rig:
    """The sandbox VMs, a history and the updates seen, with a watcher made to order."""

    world: World
    clock: ManualClock
    vms: VmSandbox
    history: AsyncHistory
    broadcaster: Broadcaster
    seen: Updates
    tmp_path: Path

    async def deploy(self, environment: str) -> tuple[Run, DeployRecord]:
        """A push to `environment`, recorded in the history as a running deploy."""
        run = self.world.push(REPO, environment)
        deploy = Deploy(
            id=f"{run.id % 16**12:012x}",
            repo=REPO,
            environment=run.environment,
            sha=run.sha,
            triggered_by=Trigger.PUSH,
            actor=run.actor,
            created_at=run.created_at,
            run_id=run.id,
        )
        events = [
            NewEvent(deploy.id, EventKind.CREATED, run.created_at),
            NewEvent(deploy.id, EventKind.STATUS, run.created_at, status=Status.RUNNING),
        ]
        return run, (await self.history.create_deploy(deploy, events)).record

    def watcher(
        self, environment: str, data: str = "data", grace: float = GRACE_SECONDS, **changes: Any
    ) -> VmWatcher:
        """A watcher of `environment` (config fields replaced by `changes`) spooling to `data`."""
        env = env_config(self.world, self.vms, environment, **changes)
        return VmWatcher(
            REPO,
            env,
            self.history,
            self.tmp_path / data,
            self.broadcaster,
            ssh_options=FAST,
            grace=grace,
        )


@pytest.fixture
async def rig(
    world: World, clock: ManualClock, vms: VmSandbox, tmp_path: Path
) -> AsyncIterator[Rig]:
    broadcaster = Broadcaster()
    seen = Updates(broadcaster)
    await seen.start()
    history = AsyncHistory(History(tmp_path / "history.json"))
    yield Rig(world, clock, vms, history, broadcaster, seen, tmp_path)
    await seen.close()


def agent_confirmed(reader: SpoolReader) -> Callable[[], bool]:
    """Whether the spool holds the agent's "traffic flowing" line yet (re-read on each call)."""

    def confirmed() -> bool:
        reader.refresh()
        return any("traffic flowing" in r.text for r in reader)

    return confirmed


async def test_deploy_spool_gets_vm_lines_and_one_first_healthy_event(rig: Rig) -> None:
    world, clock, vms, history, seen = rig.world, rig.clock, rig.vms, rig.history, rig.seen
    run, record = await rig.deploy("staging")
    watcher = rig.watcher("staging", grace=0.2)
    env = watcher.env
    await watcher.watch(record)
    await watcher.watch(record)  # idempotent: still one set of streams
    await wait_until(lambda: vms.session_count() == 2 * len(env.hosts), what="the streams")
    assert watcher.watching == [record.id]

    def healthy_published() -> bool:
        return any(
            isinstance(u, DeployChanged) and u.record.first_healthy_at is not None
            for u in seen.seen
        )

    await run_world(clock, healthy_published, step=2.0)
    reader = SpoolReader(spool_path(rig.tmp_path / "data", record.id))
    await run_world(clock, agent_confirmed(reader), step=2.0)
    await watcher.deploy_finished(record.id)
    await wait_until(lambda: watcher.watching == [], what="the grace period to end")
    await wait_until(lambda: vms.session_count() == 0, what="the remote commands to stop")

    stored = await history.record(record.id)
    healthy = [e for e in stored.events if e.kind is EventKind.FIRST_HEALTHY]
    assert [e.event_id for e in healthy] == [first_healthy_id(record.id)]
    assert healthy[0].at == world.first_healthy_at(run)
    assert stored.duration is not None and stored.duration[0] > timedelta(0)

    reader.refresh()
    records = list(reader)
    labels = {f"127.0.0.1:{vms.port_of(vm)}" for vm in world.environment(REPO, "staging").vm_names}
    assert {r.host for r in records} == labels
    assert {r.source for r in records} == {"kamal-proxy", "vmkit-agent"}
    proxy = [r.text for r in records if r.source == "kamal-proxy"]
    assert any('"msg":"Deploying"' in t for t in proxy) and any('"Deployed"' in t for t in proxy)
    assert any(r.source == "vmkit-agent" and "is healthy" in r.text for r in records)
    assert any(isinstance(u, LogGrew) and u.deploy_id == record.id for u in seen.seen)
    key = f"ssh:deploy@127.0.0.1:{vms.port_of(world.environment(REPO, 'staging').deploy_host)}"
    assert [h.health for h in seen.health(key)] == [Health.OK]
    reader.close()
    await watcher.stop()


async def test_offline_host_is_unreachable_then_ok_when_it_returns(rig: Rig) -> None:
    world, clock, vms, seen = rig.world, rig.clock, rig.vms, rig.seen
    vm = world.environment(REPO, "production").deploy_host
    world.set_vm_offline(vm, True)
    await vms.refresh()
    _, record = await rig.deploy("production")
    watcher = rig.watcher("production")
    key = f"ssh:{vms.host_spec(vm)}"
    await watcher.watch(record)
    await wait_until(lambda: seen.health(key), what="a health update")
    down = seen.health(key)[0]
    assert down.health is Health.UNREACHABLE and down.environment == "production"
    assert "connection refused" in down.message and vms.host_spec(vm) in down.message

    world.set_vm_offline(vm, False)
    await run_world(clock, lambda: seen.health(key)[-1].health is Health.OK, step=5.0)
    await watcher.stop()
    assert watcher.watching == [] and vms.session_count() == 0
    await vms.stop()
    assert asyncio.all_tasks() - {asyncio.current_task()} == {seen.task}  # nothing leaked
    with SpoolReader(spool_path(rig.tmp_path / "data", record.id)) as reader:
        notes = [r.text for r in reader if r.source == VMKIT_SOURCE]
    assert len(notes) == 2  # one per stream (proxy, agent) of the offline host
    assert all("retrying" in note and "connection refused" in note for note in notes)


async def test_trust_auth_and_missing_commands_are_reported_and_not_retried(rig: Rig) -> None:
    world, vms, seen = rig.world, rig.vms, rig.seen
    empty = rig.tmp_path / "known_hosts"
    empty.write_text("")
    _, record = await rig.deploy("staging")
    vm = world.environment(REPO, "staging").deploy_host
    key = f"ssh:{vms.host_spec(vm)}"

    watcher = rig.watcher("staging", "a", known_hosts=empty)
    await watcher.watch(record)
    await wait_until(lambda: seen.health(key), what="a host key refusal")
    refused = seen.health(key)[-1]
    assert refused.health is Health.HOST_KEY
    assert str(empty) in refused.message and "SHA256:" in refused.message
    await watcher.stop()

    world.set_vm_auth_refused(vm, True)
    watcher = rig.watcher("staging", "b")
    await watcher.watch(record)
    await wait_until(lambda: seen.health(key)[-1].health is Health.AUTH, what="an auth failure")
    await watcher.stop()
    world.set_vm_auth_refused(vm, False)

    watcher = rig.watcher("staging", "c", streams=PODMAN)
    await watcher.watch(record)
    await wait_until(lambda: seen.health(key)[-1].health is Health.ERROR, what="not found")
    assert "kamal-proxy log" in seen.health(key)[-1].message
    assert "podman" in seen.health(key)[-1].message and "not found" in seen.health(key)[-1].message
    await watcher.stop()
    assert vms.session_count() == 0


async def test_without_the_proxy_log_the_agent_confirmation_is_recorded_at_the_end(
    rig: Rig,
) -> None:
    world, clock, history, seen = rig.world, rig.clock, rig.history, rig.seen
    run, record = await rig.deploy("staging")
    watcher = rig.watcher("staging", grace=0.1, streams=PODMAN)
    await watcher.watch(record)
    reader = SpoolReader(spool_path(rig.tmp_path / "data", record.id))
    await run_world(clock, agent_confirmed(reader), step=2.0)
    assert (await history.record(record.id)).first_healthy_at is None  # not before the end
    await watcher.deploy_finished(record.id)
    await wait_until(lambda: watcher.watching == [], what="the grace period to end")
    confirmation = next(r for r in reader if r.source == "vmkit-agent" and "is healthy" in r.text)
    reader.close()
    stored = await history.record(record.id)
    assert stored.first_healthy_at == confirmation.at
    assert world.first_healthy_at(run) < confirmation.at  # the proxy's moment was earlier
    assert any(isinstance(u, DeployChanged) and u.record.id == record.id for u in seen.seen)
