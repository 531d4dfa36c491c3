"""Screens as a reviewer should see them (SVG snapshots; fixed clock and data, no animation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui.factory import build_sample, make_app
from tests.tui.test_pilot import wait_for
from vmkit_tui.config import Config
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History


async def _open_production(pilot: Pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.query_one("#deploys", DataTable).row_count > 0, "deploys")
    await pilot.press("enter", "enter")
    lines = app.query_one(LogLines)
    await wait_for(pilot, lambda: lines.row_count > 0, "log lines")


def test_main_screen_80x24(snap_compare, tmp_path: Path) -> None:
    """80×24: repos and environments on top, production's deploys (newest, running, first),
    the selected deploy's details, and its log following at the bottom; footer keys."""
    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(80, 24), run_before=_open_production
    )


def test_main_screen_200x50(snap_compare, tmp_path: Path) -> None:
    """200×50: the wide layout puts the log beside the deploys; all deploy columns are shown,
    including 'rollback of 0202020' on the manual rollback, and the environment sparklines."""
    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(200, 50), run_before=_open_production
    )


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    """`?` lists every key from the live bindings, greying those not possible right now."""

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        await pilot.press("question_mark")

    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(120, 40), run_before=run_before
    )


def test_failed_deploy_with_diagnosis(snap_compare, tmp_path: Path) -> None:
    """The failed 'Bind to localhost' deploy: its diagnosis (cause, fix, the line) above the
    log, and after `d` the log scrolled to the kamal-proxy line it came from, highlighted."""

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        await pilot.press("j", "j")
        await wait_for(pilot, lambda: pilot.app.query_one(LogLines).row_count == 47, "failed log")
        await pilot.press("d")

    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(120, 36), run_before=run_before
    )


def test_log_pane_following_a_running_deploy(snap_compare, tmp_path: Path) -> None:
    """The running deploy's log focused and following its end: GitHub build lines, then the
    hostile kamal-proxy lines shown literally ([/], [@click=…]) with escape sequences gone
    and the green colour kept."""

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        await pilot.press("l")

    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(120, 36), run_before=run_before
    )


def test_empty_state_without_config(
    snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No config file: empty panes and a message naming where it looked, `vmkit-tui config
    init` and `vmkit-tui demo`."""
    monkeypatch.setenv("VMKIT_CONFIG", "/home/you/.config/vmkit/config.toml")
    service = DeployService(
        Config(source=None), AsyncHistory(History(tmp_path / "h.json")), tmp_path
    )

    async def run_before(pilot: Pilot) -> None:
        await wait_for(
            pilot, lambda: pilot.app.query_one("#problems").display, "empty-state message"
        )

    assert snap_compare(
        VmkitApp(service, spinners=False), terminal_size=(100, 30), run_before=run_before
    )
