"""The deploys table's Back column and the details pane's reason, against the sandbox (real SSH
to its VMs, real HTTP to its GHCR): the demo's production runs on two hosts, and a container
was removed by hand from one of them."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.tui.test_actions_pilot import REPO, open_environment, sandbox
from tests.tui.test_pilot import wait_for
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.details import DeployDetails
from vmkit_tui.frontends.tui.tables import BACK
from vmkit_tui.sandbox.demo import SandboxRuntime
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService

__all__ = ["sandbox"]  # the fixture, shared


def _removed_by_hand(world: World) -> str:
    env = world.environment(REPO, "production")
    first, second = ({c.sha for c in world.containers(vm)} for vm in env.vm_names)
    (sha,) = first - second
    return sha


async def test_back_column_and_details_name_the_host_without_the_container(
    sandbox: tuple[SandboxRuntime, DeployService],
) -> None:
    runtime, service = sandbox
    sha = runtime.run_in_sandbox(_removed_by_hand)
    host = str(service.config.repo(REPO).environment("production").hosts[1])
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await open_environment(pilot, app)
            table = app.query_one("#deploys", DataTable)
            records = app.overview.deploys[(REPO, "production")]
            row = next(r for r in records if r.deploy.sha == sha)
            live = next(r for r in records if r.status.value == "succeeded")

            def back(record_id: str) -> str:
                return table.get_row(record_id)[BACK].plain

            await wait_for(pilot, lambda: back(row.id) == "pull", "the Back column", timeout=20)
            assert back(live.id) == "kept"
            app.select(REPO, "production", row.id)
            await pilot.pause()
            details = str(app.query_one("#details", DeployDetails).render())
            assert f"back in_registry: no container on {host};" in details
    finally:
        await service.stop()
