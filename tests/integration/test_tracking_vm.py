"""Tracking and the VM side together: the service's GitHub watcher switches the VmWatcher on for
a running deploy, so one spool holds GitHub's job logs and the VMs' lines (real HTTP and real SSH
on 127.0.0.1), and the deploy's duration ends at the first healthy response."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.tracking_fixtures import IMAGE, REPO, Recorder, SimTime, health_is, record_of
from tests.integration.vm_helpers import FAST, wait_until
from vmkit_tui.config import Config, EnvironmentConfig, GitHubConfig, HostSpec, RepoConfig
from vmkit_tui.domain.models import DurationBasis, EventKind, Status
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import DeployChanged, Health
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import SpoolReader, spool_path
from vmkit_tui.tracking.job_logs import logged_jobs
from vmkit_tui.tracking.polling import TrackingTiming

pytest_plugins = ["tests.integration.sandbox_fixtures"]
pytestmark = pytest.mark.timeout(60)


async def test_a_running_deploy_gets_its_vm_lines_and_first_healthy_moment(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    vms = VmSandbox(world, tmp_path / "vm-keys")
    await vms.start()
    environment = world.environment(REPO, "staging")
    env = EnvironmentConfig(
        "staging",
        branch="staging",
        hosts=tuple(HostSpec.parse(vms.host_spec(vm)) for vm in environment.vm_names),
        identity_file=vms.client_key_path,
        known_hosts=vms.known_hosts_path,
    )
    config = Config(
        source=None,
        github=GitHubConfig(api_url=sandbox.base_url, token=Secret(SANDBOX_TOKEN)),
        repos=(RepoConfig(REPO, IMAGE, (env,)),),
    )
    service = DeployService(
        config,
        AsyncHistory(History(tmp_path / "history.json")),
        tmp_path,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
        ssh_options=FAST,
    )
    try:
        async with service.updates.subscription() as queue, service:
            updates = Recorder(queue)
            await updates.wait(health_is(Health.OK, "staging"))
            run = world.push(REPO, "staging", "success")
            done = await updates.wait(
                record_of(
                    run.id,
                    lambda r: (
                        r.status is Status.SUCCEEDED
                        and r.first_healthy_at is not None
                        and len(logged_jobs(r)) == 2
                    ),
                )
            )
            assert isinstance(done, DeployChanged)
            reader = SpoolReader(spool_path(tmp_path, done.record.id))

            def sources() -> set[str]:
                reader.refresh()
                return {line.source for line in reader}

            await wait_until(lambda: {"github", "kamal-proxy", "vmkit-agent"} <= sources())
            reader.close()
            record = await service.record(done.record.id)
            ssh_ok = [u for u in service.health() if u.key.startswith("ssh:")]
            assert ssh_ok and all(u.health is Health.OK for u in ssh_ok)
    finally:
        await vms.stop()
    assert record.first_healthy_at == world.first_healthy_at(run)
    duration = record.duration
    assert duration is not None and duration[1] is DurationBasis.FIRST_HEALTHY
    assert [e.kind for e in record.events].count(EventKind.FIRST_HEALTHY) == 1
