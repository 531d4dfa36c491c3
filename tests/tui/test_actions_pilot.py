"""Rollback and cancel from the keyboard, end to end against the sandbox (real HTTP and SSH).

The sandbox runs in its own thread at 20× speed, as `vmkit-tui demo` runs it; the app drives
the real deploy service, whose tracking and VM streams follow the rollback to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui.test_pilot import wait_for
from vmkit_tui.actions.preflight import default_rollback_target
from vmkit_tui.config import load_config
from vmkit_tui.domain.models import DeployRecord, EventKind, Status, Trigger
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.confirm import CancelScreen, RollbackScreen
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import History

REPO, ENV = "acme/storefront", "production"


@pytest.fixture
def sandbox(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[SandboxRuntime, DeployService]]:
    speed = getattr(request, "param", 20.0)
    runtime = SandboxRuntime(tmp_path, speed=speed, traffic_every=0)
    info = runtime.start()
    try:
        config = load_config(info.config_path)
        assert config.history_path is not None
        runtime.run_in_sandbox(lambda world: record_past(world, History(config.history_path)))
        yield runtime, sandbox_service(config, runtime)
    finally:
        runtime.stop()


async def open_environment(pilot: Pilot, app: VmkitApp) -> None:
    await wait_for(pilot, lambda: app.query_one("#deploys", DataTable).row_count > 0, "deploys")
    await pilot.press("enter", "enter")
    assert (app.repo, app.environment) == (REPO, ENV)
    # tracking fills in the statuses of the recorded past
    await wait_for(
        pilot,
        lambda: default_rollback_target(app.overview.deploys[(REPO, ENV)]) is not None,
        "a last good deploy to roll back to",
        timeout=20,
    )


async def open_rollback_dialog(pilot: Pilot, app: VmkitApp) -> tuple[DeployRecord, RollbackScreen]:
    """`r` on the default rollback target, once the dialog has its preflight facts."""
    await open_environment(pilot, app)
    target = default_rollback_target(app.overview.deploys[(REPO, ENV)])
    assert target is not None
    app.select(REPO, ENV, target.id)
    await pilot.press("r")
    screen = app.screen
    assert isinstance(screen, RollbackScreen)
    await wait_for(pilot, lambda: screen.checked is not None, "the preflight facts", timeout=20)
    return target, screen


async def test_rollback_from_the_keyboard(sandbox: tuple[SandboxRuntime, DeployService]) -> None:
    runtime, service = sandbox
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            target, screen = await open_rollback_dialog(pilot, app)
            facts = str(screen.query_one("#confirm-facts").render())
            assert target.deploy.sha in facts and "is in GHCR" in facts
            await pilot.press("y")
            await wait_for(
                pilot, lambda: not isinstance(app.screen, RollbackScreen), "the dialog closed"
            )
            await wait_for(
                pilot,
                lambda: app.overview.deploys[(REPO, ENV)][0].deploy.rollback_of == target.id,
                "the new deploy at the top",
            )
            new = app.overview.deploys[(REPO, ENV)][0]
            assert new.status is Status.RUNNING and app.deploy_id == new.id
            await wait_for(
                pilot,
                lambda: app.overview.find(new.id).status.is_final,  # type: ignore[union-attr]
                "the rollback to finish",
                timeout=60,
            )
            assert app.overview.find(new.id).status is Status.SUCCEEDED  # type: ignore[union-attr]
    finally:
        await service.stop()
    stored = await service.history.record(new.id)
    assert stored.deploy.triggered_by is Trigger.MANUAL
    assert stored.deploy.rollback_of == target.id and stored.deploy.sha == target.deploy.sha
    kinds = [event.kind for event in stored.events]
    assert kinds[0] is EventKind.CREATED and EventKind.RUN_LINKED in kinds
    assert kinds.index(EventKind.RUN_LINKED) < kinds.index(EventKind.FIRST_HEALTHY)
    assert runtime.dispatch_requests() == 1
    run = runtime.run_in_sandbox(lambda world: world.run(stored.run_id))  # type: ignore[arg-type]
    assert run.sha == target.deploy.sha and run.is_rollback  # type: ignore[attr-defined]
    jobs = runtime.run_in_sandbox(lambda world: [job.name for job in world.jobs(run)])
    assert "build" not in jobs  # no rebuild: the old image is deployed


async def test_readonly_offers_no_rollback_or_cancel(
    sandbox: tuple[SandboxRuntime, DeployService],
) -> None:
    runtime, service = sandbox
    app = VmkitApp(service, now=runtime.now, spinners=False, readonly=True)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await open_environment(pilot, app)
            await pilot.press("r", "c")
            assert not isinstance(app.screen, RollbackScreen | CancelScreen)
            keys = {binding.binding.action for binding in app.screen.active_bindings.values()}
            assert "rollback" not in keys and "cancel_deploy" not in keys
    finally:
        await service.stop()
    assert runtime.dispatch_requests() == 0


@pytest.mark.parametrize("sandbox", [2.0], indirect=True)  # slow enough to cancel mid-run
async def test_cancel_from_the_keyboard(sandbox: tuple[SandboxRuntime, DeployService]) -> None:
    runtime, service = sandbox
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await wait_for(
                pilot, lambda: app.query_one("#deploys", DataTable).row_count > 0, "deploys"
            )
            await pilot.press("enter", "j", "enter")  # acme/storefront staging: a deploy is running
            assert app.environment == "staging"
            key = (REPO, "staging")
            await wait_for(
                pilot,
                lambda: (
                    bool(app.overview.deploys[key])
                    and app.overview.deploys[key][0].status is Status.RUNNING
                ),
                "the running deploy",
                timeout=30,
            )
            running = app.overview.deploys[key][0]
            app.select(REPO, "staging", running.id)
            await pilot.press("c")
            screen = app.screen
            assert isinstance(screen, CancelScreen)
            await wait_for(
                pilot, lambda: screen.checked is not None, "the cancel preflight", timeout=20
            )
            assert running.deploy.short_sha in str(screen.query_one("#confirm-facts").render())
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: app.overview.find(running.id).status.is_final,  # type: ignore[union-attr]
                "the run to stop",
                timeout=60,
            )
    finally:
        await service.stop()
    stored = await service.history.record(running.id)
    assert stored.cancel_requested  # the request stays in the audit trail
    assert stored.status in (Status.CANCELLED, Status.SUCCEEDED, Status.FAILED)
    assert runtime.dispatch_requests() == 0


@pytest.mark.parametrize("sandbox", [2.0], indirect=True)  # slow: the rollback stays in flight
async def test_a_second_rollback_is_refused_in_its_dialog(
    sandbox: tuple[SandboxRuntime, DeployService],
) -> None:
    runtime, service = sandbox
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            target, _first = await open_rollback_dialog(pilot, app)
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: app.overview.deploys[(REPO, ENV)][0].deploy.rollback_of == target.id,
                "the rollback under way",
            )
            app.select(REPO, ENV, target.id)
            await pilot.press("r")
            second = app.screen
            assert isinstance(second, RollbackScreen)
            await wait_for(pilot, lambda: second.checked is not None, "the facts", timeout=20)
            facts = str(second.query_one("#confirm-facts").render())
            assert "✗ " in facts and "is still in flight" in facts
            assert "this one waits for it" not in facts
            assert second.check_action("confirm", ()) is None  # no confirm key
            assert "confirm" not in str(second.query_one("#confirm-keys").render())
            await pilot.press("y")
            assert app.screen is second  # y does nothing: it was refused here, not after
            await pilot.press("escape")
    finally:
        await service.stop()
    assert runtime.dispatch_requests() == 1


async def test_the_command_log_lists_a_rollbacks_calls_without_a_token(
    sandbox: tuple[SandboxRuntime, DeployService],
) -> None:
    from vmkit_tui.frontends.tui.calls import CallsScreen
    from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN

    runtime, service = sandbox
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(200, 45)) as pilot:
            await open_environment(pilot, app)
            target = default_rollback_target(app.overview.deploys[(REPO, ENV)])
            assert target is not None
            await (await service.actions()).rollback(
                REPO, ENV, target.id, trigger=Trigger.MANUAL, actor="tester"
            )
            await pilot.press("@")
            screen = app.screen
            assert isinstance(screen, CallsScreen)
            table = screen.query_one(DataTable)

            def shown() -> list[str]:
                return [
                    " ".join(str(cell) for cell in table.get_row_at(row))
                    for row in range(table.row_count)
                ]

            dispatch = f"POST /repos/{REPO}/actions/workflows/deploy.yml/dispatches"
            await wait_for(pilot, lambda: any(dispatch in row for row in shown()), "the dispatch")

            # it follows while open: the VM streams of the rollback show up as they start
            # (the eligibility's `docker container ls` is an SSH command too: wait for a stream)
            def follows(row: str) -> bool:
                return " ssh " in f" {row} " and "--follow" in row

            await wait_for(pilot, lambda: any(follows(row) for row in shown()), "a VM stream")
            rows = shown()
            seqs = [int(row.split()[0]) for row in rows]
            assert seqs == sorted(seqs, reverse=True) and len(seqs) > 10  # newest first
            ssh_row = next(row for row in rows if follows(row))
            assert "deploy@127.0.0.1:" in ssh_row and "--follow" in ssh_row
            await pilot.press("slash", *"dispatches", "enter")
            assert shown() and all("dispatches" in row for row in shown())
            pane = "\n".join(rows)
    finally:
        await service.stop()
    files = sorted((service.data_dir / "calls").glob("calls-*.jsonl"))
    written = "".join(path.read_text() for path in files)
    assert dispatch in written
    assert SANDBOX_TOKEN not in pane and SANDBOX_TOKEN not in written
    assert "sig=" not in pane and "sig=" not in written  # nor a signed log URL's signature
