"""`vmkit-tui demo` before its first frame: the past is recorded and its statuses found before
the dashboard opens, and the run links lead to the sandbox's own pages (real HTTP, real SSH)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vmkit_tui.config import load_config
from vmkit_tui.sandbox.commands import prepare_data_dir, sandbox_service, settle_past
from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.history import History


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[SandboxRuntime]:
    prepare_data_dir(tmp_path / "demo")
    runtime = SandboxRuntime(tmp_path / "demo", speed=20.0, traffic_every=0)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def test_the_past_is_complete_before_the_dashboard_opens(runtime: SandboxRuntime) -> None:
    assert runtime.info is not None
    config = load_config(runtime.info.config_path)
    assert config.history_path is not None
    history = History(config.history_path)

    def record(world: World) -> set[int]:
        """Record the past; the runs that had finished by then."""
        record_past(world, history, runtime.web_url)
        return {run.id for run in world.runs() if world.run_status(run).status == "completed"}

    done = runtime.run_in_sandbox(record)
    assert isinstance(done, set) and len(done) > 50
    finished = [r for r in history.records() if r.run_id in done]
    assert len(finished) > 50  # (the history keeps the newest 50 per environment)
    assert all(not r.status.is_final for r in finished)  # recorded: identities only

    asyncio.run(settle_past(sandbox_service(config, runtime)))
    finished = [r for r in history.records() if r.run_id in done]
    pending = [r.id for r in finished if not r.status.is_final]
    assert pending == [], f"{len(pending)} finished runs still pending in the history"


def test_run_links_lead_to_a_page_that_says_it_is_the_sandbox(runtime: SandboxRuntime) -> None:
    assert runtime.info is not None
    config = load_config(runtime.info.config_path)
    assert config.history_path is not None
    history = History(config.history_path)
    runtime.run_in_sandbox(lambda world: record_past(world, history, runtime.web_url))
    record = history.records()[0]
    assert record.run_url is not None and record.run_url.startswith("http://127.0.0.1:")
    page = httpx.get(record.run_url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<h1>vmkit-tui sandbox run {record.run_id}</h1>" in page.text
    assert "not github.com" in page.text
