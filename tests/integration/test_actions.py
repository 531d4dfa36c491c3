"""Rollback, deploy-a-SHA and cancel with the `github` strategy, against the sandbox GitHub
(real HTTP) and VMs (real SSH) on 127.0.0.1: recorded before sent, one dispatch per action
(also when its answer is lost), the checks a user reads before confirming, cancel before and
during Kamal's container swap, and the final states as tracking records them."""

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
    record_past,
    tracked_to_the_end,
)
from tests.integration.vm_helpers import FAST
from vmkit_tui.actions.cancel import swap_seen
from vmkit_tui.actions.deploy_actions import DeployActions
from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.domain.models import DeployRecord, EventKind, Status, Trigger
from vmkit_tui.domain.updates import Broadcaster, DeployChanged, Update
from vmkit_tui.sandbox.servers.faults import RecordedRequest
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import CancelOutcome, GitHubClient
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.vm_watch import VmWatcher

pytest_plugins = ["tests.integration.sandbox_fixtures", "tests.integration.vm_fixtures"]
pytestmark = pytest.mark.timeout(90)

MANUAL = Trigger.MANUAL


class Probe(Broadcaster):
    """Remembers every update with how many dispatches the sandbox had received by then."""

    def __init__(self, sandbox: GitHubSandbox) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.seen: list[tuple[Update, int]] = []

    def publish(self, update: Update) -> None:
        self.seen.append((update, len(dispatches(self.sandbox))))
        super().publish(update)

    def changes(self, deploy_id: str) -> list[tuple[DeployRecord, int]]:
        return [
            (u.record, sent)
            for u, sent in self.seen
            if isinstance(u, DeployChanged) and u.record.id == deploy_id
        ]


@dataclass
class Setup:
    world: World
    clock: ManualClock
    sandbox: GitHubSandbox
    vms: VmSandbox
    history: History
    client: GitHubClient
    actions: DeployActions
    updates: Probe
    data_dir: Path

    def records(self, environment: str = "production") -> list[DeployRecord]:
        return self.history.records(REPO, environment)

    def deploy_of(self, sha7: str, status: Status) -> DeployRecord:
        return next(
            r for r in self.records() if r.deploy.sha.startswith(sha7) and r.status is status
        )


@pytest.fixture
async def setup(
    world: World, clock: ManualClock, sandbox: GitHubSandbox, vms: VmSandbox, tmp_path: Path
) -> AsyncIterator[Setup]:
    updates = Probe(sandbox)
    config = make_config(world, sandbox, vms)
    history = History(tmp_path / "history.json")
    async with acting(config, history, sandbox, clock, tmp_path, updates) as (client, actions):
        yield Setup(world, clock, sandbox, vms, history, client, actions, updates, tmp_path)


def dispatches(sandbox: GitHubSandbox) -> list[RecordedRequest]:
    return [r for r in sandbox.requests if r.method == "POST" and r.path.endswith("/dispatches")]


def runs_of(world: World, record: DeployRecord) -> list[Run]:
    return [
        r for r in world.runs(REPO, include_future=True) if r.request_id == f"vmkit-{record.id}"
    ]


def kinds(record: DeployRecord) -> list[str]:
    return [
        e.kind.value if e.kind is not EventKind.STATUS else str(e.status) for e in record.events
    ]


async def test_rollback_is_recorded_first_dispatched_once_and_ends_succeeded(
    setup: Setup,
) -> None:
    s = setup
    live, target = (
        s.deploy_of("99c9430", Status.SUCCEEDED),
        s.deploy_of("3b1287f", Status.SUCCEEDED),
    )
    check = await s.actions.preflight(REPO, "production")  # `r` with no target: the default
    assert check.live is not None and check.live.id == live.id
    assert check.target.deploy is not None and check.target.deploy.id == target.id
    assert check.target.message == "Remove unused retry backoff from worker"
    assert check.image_check.present and check.refusal() is None
    before = len(s.records())

    record = await s.actions.rollback(
        REPO, "production", trigger=MANUAL, actor="maria-chen", preflight=check
    )

    deploy = record.deploy
    assert deploy.sha == target.deploy.sha and deploy.rollback_of == target.id
    assert deploy.triggered_by is Trigger.MANUAL and deploy.actor == "maria-chen"
    assert kinds(record) == ["created", "running", "run_linked", "note"]
    created = record.events[0].data
    assert created["title"] == "Roll back production to 3b1287f"
    assert created["target_sha"] == deploy.sha and created["strategy"] == "github"
    assert created["request_id"] == f"vmkit-{record.id}"
    assert created["warnings"] == list(check.warnings)
    assert record.events[-1].detail == f"To undo, roll back to 99c9430 (deploy {live.id})."
    records = s.records()
    assert len(records) == before + 1 and records[0].id == record.id  # newest first
    first, sent_then = s.updates.changes(record.id)[0]
    assert first.status is Status.RUNNING and sent_then == 0  # published before the dispatch

    (request,) = dispatches(s.sandbox)
    (run,) = runs_of(s.world, record)
    assert request.status == 200
    assert run.inputs == {
        "sha": deploy.sha,
        "environment": "production",
        "request_id": f"vmkit-{record.id}",
    }
    assert record.run_id == run.id
    assert record.run_url == f"https://github.com/{REPO}/actions/runs/{run.id}"

    final = await tracked_to_the_end(s.actions.config, s.history, s.data_dir, s.clock, record.id)
    assert final.status is Status.SUCCEEDED
    assert [job.name for job in s.world.jobs(run)] == ["deploy"]  # no build: the image exists
    steps = [step.name for job in s.world.jobs(run) for step in job.steps]
    assert "Deploy with Kamal" in steps and not any("uild" in name for name in steps)
    assert s.world.environment(REPO, "production").live_sha == deploy.sha


async def test_one_preflight_lists_ghcr_once(setup: Setup) -> None:
    """The image line and the `Back` verdict come from the same listing: GHCR is asked once
    per check (every page once), not once for each."""
    s = setup
    before = len(s.sandbox.requests)
    check = await s.actions.preflight(REPO, "production")
    listing = [
        (r.path, r.query) for r in s.sandbox.requests[before:] if "/packages/container/" in r.path
    ]
    assert listing and len(listing) == len(set(listing)), listing
    assert check.image_check.present and check.eligibility.checked_at is not None


async def test_migration_warning_only_when_the_compare_shows_migrations(setup: Setup) -> None:
    s = setup
    # Live 99c9430 came after ae3a2b7, which renamed a table with an Alembic migration.
    check = await s.actions.preflight(REPO, "production")
    assert check.migrations.files == (
        "alembic/versions/e64774e69a5d_rename_customers_to_accounts.py",
    )
    assert check.migrations.compared == "ahead"
    assert any(
        "1 migration file(s) changed between 3b1287f and 99c9430" in w for w in check.warnings
    )

    # Two pushes without migrations: rolling the second back steps over none.
    first, second = (
        await _pushed(s, ("app/api/health.py",)),
        await _pushed(s, ("app/api/users.py",)),
    )
    await record_past(s.actions.config, s.history, s.client, s.data_dir, s.clock)
    calm = await s.actions.preflight(REPO, "production")
    assert calm.live is not None and calm.live.deploy.sha == second.sha
    assert calm.target.sha == first.sha
    assert calm.migrations.files == () and calm.migrations.compared == "ahead"
    assert not any("migration" in w for w in calm.warnings)


async def _pushed(s: Setup, files: tuple[str, ...]) -> Run:
    run = s.world.push(REPO, "production", "success", files=files)
    await drive(s.clock, eventually(lambda: _completed(s.world, run), "the push run"), step=5.0)
    return run


async def _completed(world: World, run: Run) -> bool:
    return world.run_status(run).status == "completed"


async def test_an_image_gone_from_ghcr_is_refused_unless_forced(setup: Setup) -> None:
    s = setup
    gone = s.deploy_of("7e62aa0", Status.SUCCEEDED)  # its image was deleted from GHCR
    before = s.history.path.read_bytes()
    with pytest.raises(ActionRefused) as refused:
        await s.actions.rollback(REPO, "production", gone.id, trigger=MANUAL, actor="maria-chen")
    message = str(refused.value)
    assert "ghcr.io/acme/my-fastapi-app:7e62aa0 is no longer in GHCR" in message
    assert "force=True" in message
    assert dispatches(s.sandbox) == [] and s.history.path.read_bytes() == before

    forced = await s.actions.rollback(
        REPO, "production", gone.id, trigger=Trigger.MCP, actor="assistant", force=True
    )
    assert forced.deploy.triggered_by is Trigger.MCP
    assert any("no longer in GHCR" in m for m in forced.events[0].data["forced"])
    assert len(dispatches(s.sandbox)) == 1


async def test_a_target_that_failed_is_warned_about_and_the_warning_recorded(
    setup: Setup,
) -> None:
    s = setup
    failed = s.deploy_of("6555abf", Status.FAILED)  # the lock was held; its image is in GHCR
    check = await s.actions.preflight(REPO, "production", failed.id)
    warning = "The deploy of 6555abf you picked ended failed"
    assert check.refusal() is None and any(warning in w for w in check.warnings)
    record = await s.actions.rollback(
        REPO, "production", failed.id, trigger=MANUAL, actor="maria-chen"
    )
    assert any(warning in w for w in record.events[0].data["warnings"])


async def test_a_double_rollback_sends_one_dispatch(setup: Setup) -> None:
    s = setup
    results = await asyncio.gather(
        *(
            s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    (record,) = [r for r in results if isinstance(r, DeployRecord)]
    (refused,) = [r for r in results if isinstance(r, ActionRefused)]
    assert "is being sent right now" in str(refused)
    with pytest.raises(ActionRefused, match="is still in flight"):  # and later, while it runs
        await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    assert len(dispatches(s.sandbox)) == 1 and len(runs_of(s.world, record)) == 1
    other = next(r for r in s.records("staging") if r.deploy.sha.startswith("3192b70"))
    staging = await s.actions.rollback(REPO, "staging", other.id, trigger=MANUAL, actor="me")
    assert staging.deploy.environment == "staging"  # one action per environment, not overall


async def test_a_lost_dispatch_answer_still_makes_exactly_one_run(setup: Setup) -> None:
    s = setup
    lost = s.sandbox.faults.lose_dispatch_response()
    record = await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    assert lost.hits == 1
    (run,) = runs_of(s.world, record)
    assert record.run_id == run.id and record.status is Status.RUNNING
    assert len(dispatches(s.sandbox)) == 1  # found by its request id, never sent again


async def test_cancel_before_the_kamal_step(setup: Setup) -> None:
    s = setup
    record = await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    (run,) = runs_of(s.world, record)
    await drive(s.clock, eventually(lambda: _step_running(s.world, run, "Set up Ruby"), "Ruby"))

    check = await s.actions.cancel_preflight(record.id)
    assert check.refusal is None and not check.kamal_started and check.warnings == ()
    result = await s.actions.cancel(record.id, trigger=MANUAL, actor="priya-r")

    assert result.outcome is CancelOutcome.REQUESTED and result.lock is None
    assert result.force_after is not None and result.message.startswith("Cancel requested")
    cancels = [r for r in s.sandbox.requests if r.path.endswith(f"/runs/{run.id}/cancel")]
    assert [r.status for r in cancels] == [202]
    requested = [e for e in result.record.events if e.kind is EventKind.CANCEL_REQUESTED]
    assert [e.data for e in requested] == [
        {"trigger": "manual", "actor": "priya-r", "force": False}
    ]
    assert result.record.status is Status.CANCELLING
    with pytest.raises(ActionRefused, match="already requested"):  # a second press
        await s.actions.cancel(record.id, trigger=MANUAL, actor="priya-r")

    final = await tracked_to_the_end(s.actions.config, s.history, s.data_dir, s.clock, record.id)
    assert final.status is Status.CANCELLED and final.cancel_requested
    assert s.world.run_status(run).conclusion == "cancelled"


async def _step_running(world: World, run: Run, name: str) -> bool:
    return any(
        step.name == name and step.status == "in_progress"
        for job in world.jobs(run)
        for step in job.steps
    )


async def test_cancel_during_the_swap_warns_and_the_deploy_completes_anyway(
    setup: Setup,
) -> None:
    s = setup
    record = await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    (run,) = runs_of(s.world, record)
    env = s.actions.config.repo(REPO).environment("production")
    history = AsyncHistory(s.history)
    watcher = VmWatcher(
        REPO, env, history, s.data_dir, Broadcaster(), now=s.clock.now, ssh_options=FAST
    )

    async def spooled() -> bool:
        return await asyncio.to_thread(swap_seen, s.data_dir, record.id)

    try:
        await watcher.watch(record)  # tracking does this when the run starts
        await drive(s.clock, eventually(spooled, "kamal-proxy's Deploying in the spool"))
    finally:
        await watcher.stop()

    check = await s.actions.cancel_preflight(record.id)
    assert check.kamal_step == "Deploy with Kamal" and check.swap_seen
    assert any("already switching traffic" in w for w in check.warnings)
    assert any("roll back afterwards" in w for w in check.warnings)

    result = await drive(s.clock, s.actions.cancel(record.id, trigger=MANUAL, actor="priya-r"))
    assert result.outcome is CancelOutcome.REQUESTED
    assert "may complete anyway" in result.message and result.warnings == check.warnings
    assert result.lock is not None and result.lock.held is False
    assert result.lock.message == f"No Kamal deploy lock is held on {env.deploy_host}."
    assert result.record.events[-1].detail == result.lock.message  # also in the audit trail

    final = await tracked_to_the_end(s.actions.config, s.history, s.data_dir, s.clock, record.id)
    assert final.status is Status.SUCCEEDED and final.cancel_requested  # what really happened
    assert s.world.run_status(run).conclusion == "success"


async def test_cancel_of_a_finished_run_says_so(setup: Setup) -> None:
    s = setup
    record = await s.actions.rollback(REPO, "production", trigger=MANUAL, actor="maria-chen")
    (run,) = runs_of(s.world, record)
    await drive(s.clock, eventually(lambda: _completed(s.world, run), "the run"), step=5.0)
    # Nobody tracked it yet: the history still says running, GitHub says finished (409).
    result = await s.actions.cancel(record.id, trigger=MANUAL, actor="priya-r")
    assert result.outcome is CancelOutcome.ALREADY_FINISHED
    assert "had already finished" in result.message and result.force_after is None
    assert result.record.events[-1].detail == result.message

    done = s.deploy_of("99c9430", Status.SUCCEEDED)
    with pytest.raises(ActionRefused, match=r"already finished \(succeeded\)"):
        await s.actions.cancel(done.id, trigger=MANUAL, actor="priya-r")


async def test_bad_input_is_refused_with_one_clear_message(setup: Setup) -> None:
    s = setup
    cases = {
        ("production", "0123456789ab"): "No deploy .* starting with 0123456789ab",
        ("production", "1234567"): "No deploy .* starting with 1234567: give the full 40-hex",
        ("production", "3B1287F" + "0" * 33): "Not a deploy id .* or a commit SHA",
        ("production", "3b1287"): "Not a deploy id .* or a commit SHA",
        ("preview", None): "acme/my-fastapi-app preview is not in the configuration",
    }
    for (environment, target), words in cases.items():
        with pytest.raises(ActionRefused, match=words):
            await s.actions.rollback(REPO, environment, target, trigger=MANUAL, actor="me")
    live = s.deploy_of("99c9430", Status.SUCCEEDED).deploy.sha
    with pytest.raises(ActionRefused, match="already live"):
        await s.actions.rollback(REPO, "production", live, trigger=MANUAL, actor="me")
    with pytest.raises(ActionRefused, match="actor must be named"):
        await s.actions.rollback(REPO, "production", trigger=MANUAL, actor=" \x1b[2J ")
    with pytest.raises(ActionRefused, match="has no commit"):
        await s.actions.deploy_sha(REPO, "production", "f" * 40, trigger=MANUAL, actor="me")
    assert dispatches(s.sandbox) == []


async def test_deploy_sha_beyond_the_kept_history(
    world: World, clock: ManualClock, sandbox: GitHubSandbox, vms: VmSandbox, tmp_path: Path
) -> None:
    config = make_config(world, sandbox, vms)
    history = History(tmp_path / "history.json", keep=3)  # only the newest three are kept
    async with acting(config, history, sandbox, clock, tmp_path, Broadcaster()) as (_, actions):
        old = next(r for r in world.runs(REPO) if r.sha.startswith("3b1287f"))
        assert all(r.deploy.sha != old.sha for r in history.records(REPO, "production"))
        record = await actions.deploy_sha(REPO, "production", old.sha, trigger=MANUAL, actor="me")
    assert record.deploy.sha == old.sha and record.deploy.rollback_of is None
    assert record.events[0].data["title"] == "Deploy 3b1287f to production"
    assert record.events[0].data["action"] == "deploy"
    (run,) = runs_of(world, record)
    assert run.inputs["sha"] == old.sha and record.run_id == run.id
