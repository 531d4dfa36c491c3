"""The team history from the keyboard, against the sandbox (real HTTP and SSH): a teammate's
unfinished deploy makes `r` … `y` ask whether to go past it, and only a second `y` sends;
a token remembered as unable to write deployments shows local-only in the header at start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.tui.test_actions_pilot import ENV, REPO, open_rollback_dialog
from tests.tui.test_pilot import wait_for
from vmkit_tui.config import Config, load_config
from vmkit_tui.domain.models import EventKind, to_iso, utcnow
from vmkit_tui.domain.secret import Secret
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.confirm import OverrideScreen
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import History


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[SandboxRuntime, Config]]:
    runtime = SandboxRuntime(tmp_path, speed=20.0, traffic_every=0)
    info = runtime.start()
    try:
        config = load_config(info.config_path)
        config = replace(config, github=replace(config.github, share=True))
        assert config.history_path is not None
        runtime.run_in_sandbox(lambda world: record_past(world, History(config.history_path)))
        yield runtime, config
    finally:
        runtime.stop()


async def test_a_teammates_deploy_in_flight_asks_before_going_past_it(
    shared: tuple[SandboxRuntime, Config],
) -> None:
    runtime, config = shared
    app = VmkitApp(sandbox_service(config, runtime), now=runtime.now, spinners=False)
    async with app.run_test(size=(150, 45)) as pilot:
        target, _screen = await open_rollback_dialog(pilot, app)
        async with GitHubClient(config.github.api_url, Secret(SANDBOX_TOKEN)) as github:
            bobs = await github.create_deployment(  # bob's claim, made just now, unfinished
                REPO,
                sha=target.deploy.sha,
                environment=ENV,
                task="deploy:rollback",
                payload={"vmkit_deploy_id": "b0b0b0b0b0b0", "actor": "bob"},
                description="Roll back production (manual, bob)",
            )
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideScreen), "the question")
        question = app.screen
        assert isinstance(question, OverrideScreen)
        await wait_for(pilot, lambda: question.checked is not None, "its facts")
        facts = str(question.query_one("#confirm-facts").render())
        assert f"bob is already deploying {ENV}" in facts and f"#{bobs.id}" in facts
        mine = [r for r in app.overview.deploys[(REPO, ENV)] if r.deploy.actor != "bob"]
        await pilot.press("y")

        def sent() -> bool:
            return len(app.overview.deploys[(REPO, ENV)]) > len(mine)

        await wait_for(pilot, sent, "the rollback recorded", timeout=20)
        record = app.overview.deploys[(REPO, ENV)][0]
        created = next(e for e in record.events if e.kind is EventKind.CREATED)
        assert any(f"#{bobs.id} of bob" in text for text in created.data["forced"])


async def test_local_only_is_shown_in_the_header_from_the_start(
    shared: tuple[SandboxRuntime, Config],
) -> None:
    runtime, config = shared
    assert config.data_dir is not None
    state = {"token": Secret(SANDBOX_TOKEN).fingerprint, "at": to_iso(utcnow()), "message": "x"}
    (config.data_dir / "team.json").write_text(json.dumps(state))
    app = VmkitApp(sandbox_service(config, runtime), now=runtime.now, spinners=False)
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#problems", Static).display, "the header")
        await pilot.press("enter", "enter")
        problems = app.query_one("#problems", Static)
        await wait_for(pilot, lambda: "Local-only" in str(problems.render()), "local-only")
        assert "Deployments: write" in str(problems.render())
