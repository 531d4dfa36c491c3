"""The app on the threaded sandbox, as `vmkit-tui demo` runs it: outages are shown and survived,
and nothing is left listening or running afterwards."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.tui.test_pilot import wait_for
from vmkit_tui.config import Config, load_config
from vmkit_tui.domain.updates import Health
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
from vmkit_tui.store.history import History


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[SandboxRuntime]:
    runtime = SandboxRuntime(tmp_path, speed=20.0, traffic_every=0)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def seeded_config(runtime: SandboxRuntime) -> Config:
    assert runtime.info is not None
    config = load_config(runtime.info.config_path)
    assert config.history_path is not None
    runtime.run_in_sandbox(lambda world: record_past(world, History(config.history_path)))
    return config


def problems(app: VmkitApp) -> str:
    box = app.main.query_one("#problems")
    return str(box.render()) if box.display else ""


async def test_github_outage_is_shown_and_survived(runtime: SandboxRuntime) -> None:
    service = sandbox_service(seeded_config(runtime), runtime)
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            table = app.main.query_one("#deploys", DataTable)
            await wait_for(pilot, lambda: table.row_count > 0, "deploys")
            await pilot.press("enter", "enter")
            runtime.on_github(lambda github: github.faults.server_errors(None, status=502))
            await wait_for(
                pilot, lambda: "GitHub" in problems(app), "the outage on screen", timeout=30
            )
            await pilot.press("j", "k", "l", "h")  # the app keeps answering keys meanwhile
            assert app.is_running and app.focused is app.main.query_one("#deploys")
            runtime.on_github(lambda github: github.faults.clear())
            await wait_for(pilot, lambda: problems(app) == "", "recovery", timeout=60)
    finally:
        await service.stop()


async def test_unknown_host_key_is_refused_with_a_message(runtime: SandboxRuntime) -> None:
    config = seeded_config(runtime)
    known_hosts = runtime.info.key_dir / "known_hosts"  # type: ignore[union-attr]
    known_hosts.write_text("")  # the VMs' keys are no longer trusted
    service = sandbox_service(config, runtime)
    app = VmkitApp(service, now=runtime.now, spinners=False)
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await wait_for(
                pilot, lambda: app.main.query_one("#deploys", DataTable).row_count > 0, "deploys"
            )
            await pilot.press("enter", "j")  # acme/storefront staging: a deploy is running there
            assert app.environment == "staging"
            await wait_for(
                pilot,
                lambda: any(h.health is Health.HOST_KEY for h in service.health()),
                "the host key refusal",
                timeout=60,
            )
            await wait_for(pilot, lambda: "known_hosts" in problems(app), "the refusal on screen")
            assert str(known_hosts) in problems(app)
    finally:
        await service.stop()


async def test_demo_leaves_no_port_or_thread_behind(tmp_path: Path) -> None:
    runtime = SandboxRuntime(tmp_path, speed=20.0)
    runtime.start()
    service = sandbox_service(seeded_config(runtime), runtime)
    ports = runtime.ports()
    app = VmkitApp(service, now=runtime.now, spinners=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot, lambda: any(h.health is Health.OK for h in service.health()), "tracking"
        )
        await pilot.press("q")
    await service.stop()
    runtime.stop()
    assert not [t for t in threading.enumerate() if t.name == "vmkit-sandbox"]
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in tasks if "track" in t.get_name()]
