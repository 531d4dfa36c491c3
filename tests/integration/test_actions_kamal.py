"""Rollback with the `kamal-ssh` strategy: Kamal on the sandbox's deploy host over real SSH
(127.0.0.1, host key checked). A version still kept as a container goes back with `kamal
rollback`; one that is not (Kamal says so and exits 0) is redeployed from GHCR with `kamal
deploy --skip-push --version`; the output streams into the deploy's spool, the verdict comes
from it, the VM's proxy log gives the first-healthy moment, a failure gets a diagnosis, and a
running Kamal can be neither cancelled nor doubled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.actions_helpers import (
    REPO,
    acting,
    drive,
    eventually,
    make_config,
)
from tests.integration.vm_helpers import FAST
from vmkit_tui.actions.deploy_actions import DeployActions
from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.actions.kamal_ssh import KAMAL_SOURCE, lock_status
from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.eligibility import Eligibility
from vmkit_tui.domain.models import DeployRecord, DurationBasis, EventKind, Status, Trigger
from vmkit_tui.domain.updates import Broadcaster, LogGrew, Update
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.history import History
from vmkit_tui.store.spool import LogRecord, SpoolReader, spool_path

pytest_plugins = ["tests.integration.sandbox_fixtures", "tests.integration.vm_fixtures"]
pytestmark = pytest.mark.timeout(90)

MANUAL = Trigger.MANUAL


class Seen(Broadcaster):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[Update] = []

    def publish(self, update: Update) -> None:
        self.updates.append(update)
        super().publish(update)


@dataclass
class Setup:
    world: World
    clock: ManualClock
    sandbox: GitHubSandbox
    history: History
    actions: DeployActions
    updates: Seen
    data_dir: Path

    def deploy_of(self, sha7: str) -> DeployRecord:
        records = self.history.records(REPO, "production")
        return next(r for r in records if r.deploy.sha.startswith(sha7))

    def spool(self, deploy_id: str) -> list[LogRecord]:
        with SpoolReader(spool_path(self.data_dir, deploy_id)) as reader:
            return list(reader)

    def live(self) -> str | None:
        return self.world.environment(REPO, "production").live_sha


@pytest.fixture
async def setup(
    world: World, clock: ManualClock, sandbox: GitHubSandbox, vms: VmSandbox, tmp_path: Path
) -> AsyncIterator[Setup]:
    updates = Seen()
    config = make_config(world, sandbox, vms, RollbackStrategy.KAMAL_SSH)
    history = History(tmp_path / "history.json")
    async with acting(config, history, sandbox, clock, tmp_path, updates) as (_, actions):
        yield Setup(world, clock, sandbox, history, actions, updates, tmp_path)


def kinds(record: DeployRecord) -> list[str]:
    return [
        e.kind.value if e.kind is not EventKind.STATUS else str(e.status) for e in record.events
    ]


def texts(lines: list[LogRecord], source: str = KAMAL_SOURCE) -> list[str]:
    return [line.text for line in lines if line.source == source]


async def first_healthy(s: Setup, deploy_id: str) -> None:
    async def recorded() -> bool:
        return (await s.actions.history.record(deploy_id)).first_healthy_at is not None

    await eventually(recorded, "the first-healthy moment from kamal-proxy's log")


async def test_a_version_kept_as_a_container_goes_back_with_kamal_rollback(setup: Setup) -> None:
    s = setup
    target = s.deploy_of("3b1287f")
    assert target.deploy.sha in s.world.environment(REPO, "production").retained
    record = await drive(
        s.clock, s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    )

    assert record.status is Status.SUCCEEDED
    assert record.deploy.rollback_of == target.id and record.deploy.sha == target.deploy.sha
    data = record.events[0].data
    assert data["strategy"] == "kamal-ssh" and "request_id" not in data
    statuses = [k for k in kinds(record) if k in ("running", "succeeded", "failed")]
    assert statuses == ["running", "succeeded"]
    assert record.events[-1].detail.startswith("To undo, roll back to 99c9430")
    assert s.live() == target.deploy.sha
    assert s.sandbox.requests and not [r for r in s.sandbox.requests if r.method == "POST"]

    lines = s.spool(record.id)
    kamal = texts(lines)
    assert "Acquiring the deploy lock..." in kamal
    assert (
        f"Start container with version {target.deploy.sha} (or reboot if already running)..."
        in kamal
    )
    assert not any("not available as a container" in t for t in kamal)
    assert not any("Pull app image" in t for t in kamal)  # no pull: the container was there
    deploy_host = s.actions.config.repo(REPO).environment("production").deploy_host
    assert deploy_host is not None
    hosts = {line.host for line in lines if line.source == KAMAL_SOURCE}
    assert hosts == {f"127.0.0.1:{deploy_host.port}"}
    assert LogGrew(record.id) in s.updates.updates

    await first_healthy(s, record.id)  # kamal-proxy's own log says when it went healthy
    done = await s.actions.history.record(record.id)
    assert done.duration is not None and done.duration[1] is DurationBasis.FIRST_HEALTHY
    assert texts(s.spool(record.id), "kamal-proxy")  # the VM's side is in the same spool


async def test_a_kept_container_whose_image_left_ghcr_still_goes_back_the_fast_way(
    setup: Setup,
) -> None:
    s = setup
    target = s.deploy_of("3b1287f")
    s.world.delete_image(REPO, target.deploy.sha)  # a GHCR retention policy ran
    check = await drive(s.clock, s.actions.preflight(REPO, "production"))
    assert check.image_check.missing
    assert check.eligibility.state is Eligibility.RETAINED and check.fast_path
    assert check.refusal() is None  # `kamal rollback` needs no pull
    assert any("boots the container still kept on every host" in w for w in check.warnings)

    record = await drive(
        s.clock,
        s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen", preflight=check),
    )
    assert record.status is Status.SUCCEEDED and s.live() == target.deploy.sha
    assert not any("Pull app image" in t for t in texts(s.spool(record.id)))


async def test_without_container_or_image_the_preflight_refuses(setup: Setup) -> None:
    s = setup
    failed = s.deploy_of("6555abf")  # never a container
    s.world.delete_image(REPO, failed.deploy.sha)
    check = await drive(s.clock, s.actions.preflight(REPO, "production", failed.deploy.sha))
    assert check.eligibility.state is Eligibility.GONE
    refusal = check.refusal()
    assert refusal is not None and "would fail when it pulls it" in refusal


async def test_a_version_not_kept_is_redeployed_from_ghcr(setup: Setup) -> None:
    s = setup
    failed = s.deploy_of("6555abf")  # its deploy met a held lock: never a container
    sha = failed.deploy.sha
    assert sha not in s.world.environment(REPO, "production").retained
    record = await drive(
        s.clock,
        s.actions.rollback(REPO, "production", sha, trigger=Trigger.MCP, actor="assistant"),
    )

    assert record.status is Status.SUCCEEDED and record.deploy.rollback_of == failed.id
    assert kinds(record)[:3] == ["created", "running", "note"]
    host = s.actions.config.repo(REPO).environment("production").hosts[0]
    assert f"{sha[:7]}: no container on {host}; image" in record.events[2].detail
    assert s.live() == sha
    kamal = texts(s.spool(record.id))
    # The facts said no container: straight to `kamal deploy --skip-push`, no failed attempt.
    assert not any("is not available as a container" in t for t in kamal)
    pulled = kamal.index("Pull app image...")
    assert any(f"docker pull ghcr.io/acme/my-fastapi-app:{sha}" in t for t in kamal[pulled:])


async def test_while_kamal_runs_neither_cancel_nor_a_second_rollback_is_taken(
    setup: Setup,
) -> None:
    s = setup
    task = asyncio.ensure_future(
        s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    )

    async def kamal_started() -> bool:
        newest = s.history.records(REPO, "production")[0]
        return "action" in newest.events[0].data and bool(s.spool(newest.id))

    await drive(s.clock, eventually(kamal_started, "Kamal's first lines"), step=0.1)
    running = s.history.records(REPO, "production")[0]
    assert running.status is Status.RUNNING and not task.done()
    with pytest.raises(ActionRefused, match="cannot be cancelled once started"):
        await s.actions.cancel(running.id, trigger=MANUAL, actor="priya-r")
    with pytest.raises(ActionRefused, match="is still in flight"):
        await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="priya-r")
    record = await drive(s.clock, task)
    assert record.id == running.id and record.status is Status.SUCCEEDED
    assert not (await s.actions.history.record(record.id)).cancel_requested


async def test_a_kamal_failure_is_read_from_its_output_and_diagnosed(setup: Setup) -> None:
    s = setup
    held = s.world.push(REPO, "production", "lock_held")  # leaves Kamal's deploy lock held

    async def completed() -> bool:
        return s.world.run_status(held).status == "completed"

    await drive(s.clock, eventually(completed, "the lock_held push"), step=5.0)
    env = s.actions.config.repo(REPO).environment("production")
    report = await drive(s.clock, lock_status(env, FAST))
    assert report.held is True and report.details[0].startswith("Locked by: ")
    assert report.message.endswith("release it with `kamal lock release -d production`.")

    record = await drive(
        s.clock, s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    )
    assert record.status is Status.FAILED
    # Kamal prints that line in red even into a pipe: the verdict reads it without escapes.
    assert record.events[-2].detail.endswith(
        ": ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more "
        "information"
    )
    assert record.diagnosis is not None
    assert record.diagnosis.cause.startswith("Another deploy holds Kamal's deploy lock")
    assert "kamal lock release" in record.diagnosis.fix
    assert s.live() != record.deploy.sha


async def test_an_unreachable_deploy_host_fails_the_rollback_with_the_reason(
    setup: Setup,
) -> None:
    s = setup
    env = s.world.environment(REPO, "production")
    s.world.set_vm_offline(env.deploy_host, True)
    record = await drive(
        s.clock, s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    )
    assert record.status is Status.FAILED
    (note,) = [e for e in record.events if e.kind is EventKind.NOTE]
    assert "connection refused" in note.detail and "offline" in note.detail
    own = texts(s.spool(record.id), "vmkit")
    assert any(t.startswith("cannot reach deploy@") for t in own)  # the log pane says why
