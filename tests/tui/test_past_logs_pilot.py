"""A failed deploy from before the first start, selected in the dashboard, shows why it failed:
its job logs and diagnosis are fetched when it is first selected (against the sandbox, over
real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_actions_pilot import ENV, REPO, open_environment
from tests.tui.test_pilot import wait_for
from vmkit_tui.config import load_config
from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.log_pane import LogPane
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime
from vmkit_tui.service import DeployService
from vmkit_tui.store.spool import spool_path


@pytest.fixture
def first_start(tmp_path: Path) -> Iterator[tuple[SandboxRuntime, DeployService]]:
    """The sandbox with weeks of runs behind it, and no history yet: the first start."""
    runtime = SandboxRuntime(tmp_path, speed=20.0, traffic_every=0)
    info = runtime.start()
    try:
        service = sandbox_service(load_config(info.config_path), runtime)
        service.past_logs = False  # only a selection fetches them here
        yield runtime, service
    finally:
        runtime.stop()


def past_failures(app: VmkitApp) -> list[DeployRecord]:
    return [r for r in app.overview.deploys[(REPO, ENV)] if r.status is Status.FAILED]


async def test_a_failed_deploy_from_before_the_first_start_is_diagnosed_when_selected(
    first_start: tuple[SandboxRuntime, DeployService],
) -> None:
    runtime, service = first_start
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await open_environment(pilot, app)
            await wait_for(pilot, lambda: past_failures(app), "a failed past deploy", timeout=20)
            target = past_failures(app)[-1]  # the oldest; not the row selected on opening
            assert target.diagnosis is None
            assert not spool_path(service.data_dir, target.id).exists()
            app.select(REPO, ENV, target.id)
            await wait_for(pilot, lambda: app.deploy_id == target.id, "the deploy selected")
            await wait_for(
                pilot,
                lambda: app.overview.find(target.id).diagnosis is not None,  # type: ignore[union-attr]
                "its diagnosis",
                timeout=20,
            )
            pane = app.query_one(LogPane)
            await wait_for(pilot, lambda: pane.lines.row_count > 0, "its log lines on screen")
            first = pane.lines.line_at_row(0)
            assert first is not None and first.source == "github"
            diagnosis = app.overview.find(target.id).diagnosis  # type: ignore[union-attr]
            assert diagnosis is not None
            assert pane.query_one("#log-diagnosis").display
            banner = str(pane.query_one("#diagnosis-text").render())
            assert diagnosis.cause[:30] in banner
    finally:
        await service.stop()
