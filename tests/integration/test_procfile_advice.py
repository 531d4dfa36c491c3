"""A buildpack that found nothing to run: "add a Procfile" is advised only when the deployed
commit has none, which tracking checks through the contents API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.tracking_fixtures import REPO, health_is, record_of, tracking
from vmkit_tui.domain.updates import DeployChanged, Health
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.integration.sandbox_fixtures"]


@pytest.mark.parametrize("has_procfile", [False, True])
async def test_procfile_advice_follows_the_repository(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path, has_procfile: bool
) -> None:
    if has_procfile:
        sandbox.files = {REPO: {"Procfile": "web: uvicorn app.main:app\n"}}
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        await updates.wait(health_is(Health.OK))
        run = world.push(REPO, "production", "buildpack_no_procfile")
        done = await updates.wait(record_of(run.id, lambda r: r.diagnosis is not None))
    assert isinstance(done, DeployChanged) and done.record.diagnosis is not None
    diagnosis = done.record.diagnosis
    assert diagnosis.fix.startswith("Add a Procfile") is not has_procfile
    asked = [r for r in sandbox.requests if r.path.endswith("/contents/Procfile")]
    assert [r.query for r in asked] == [f"ref={run.sha}"]
    assert asked[0].status == (200 if has_procfile else 404)
