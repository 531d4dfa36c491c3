"""The dashboard on the config `vmkit-tui init` wrote for the running sandbox: it opens on
every derived environment and tracks them from the sandbox's GitHub, unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.integration.cli_sandbox import Sandbox, sandbox
from tests.integration.test_init import run_init
from tests.tui.test_pilot import wait_for
from vmkit_tui.config import load_config
from vmkit_tui.domain.updates import Health
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path / "sb", speed=20) as found:  # runs its own loop: set up outside ours
        yield found


async def test_dashboard_tracks_every_environment_of_the_init_config(
    tmp_path: Path, sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_ENTERPRISE_TOKEN", SANDBOX_TOKEN)
    path = tmp_path / "mine" / "config.toml"
    assert run_init(sb, path, "--yes").code == 0
    config = load_config(path)
    assert config.history_path is None  # init leaves paths to their defaults
    assert sb.config.history_path is not None
    history = AsyncHistory(History(sb.config.history_path))
    service = DeployService(config, history, tmp_path / "data")
    app = VmkitApp(service, spinners=False)
    wanted = {(r.name, e.name) for r in config.repos for e in r.environments}
    assert len(wanted) == 7

    def tracked() -> set[tuple[str, str]]:
        return {
            (h.repo, h.environment)
            for h in service.health()
            if h.key == "github" and h.health is Health.OK
        }

    async with app.run_test(size=(150, 45)) as pilot:
        table = app.main.query_one("#deploys", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, "deploys on screen")
        await wait_for(pilot, lambda: tracked() == wanted, "every environment tracked", 30)
