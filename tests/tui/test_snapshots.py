"""Screens as a reviewer should see them (SVG snapshots; fixed clock and data, no animation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import wait_for
from vmkit_tui.actions.preflight import MigrationCheck, Preflight, TargetInfo
from vmkit_tui.config import Config, RollbackStrategy
from vmkit_tui.domain.updates import StepProgress, StepsChanged
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.confirm import RollbackScreen
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.service import DeployService
from vmkit_tui.sources.github.results import ImageCheck, ImageState
from vmkit_tui.store.history import AsyncHistory, History

STEPS = (
    *(
        StepProgress("build", name, n, "completed", "success")
        for n, name in enumerate(("Set up job", "Checkout", "Build image", "Push to GHCR"), 1)
    ),
    StepProgress("deploy", "Set up job", 1, "completed", "success"),
    StepProgress("deploy", "Set up SSH agent", 2, "completed", "success"),
    StepProgress("deploy", "Deploy with Kamal", 3, "in_progress", None),
    StepProgress("deploy", "Post Set up SSH agent", 4, "queued", None),
    StepProgress("deploy", "Complete job", 5, "queued", None),
)


async def _open_production(pilot: Pilot) -> None:
    """Production's running deploy selected, its GitHub steps known, its log following."""
    app = pilot.app
    assert isinstance(app, VmkitApp)
    await wait_for(pilot, lambda: app.query_one("#deploys", DataTable).row_count > 0, "deploys")
    await pilot.press("enter", "enter")
    lines = app.query_one(LogLines)
    await wait_for(pilot, lambda: lines.row_count > 0, "log lines")
    running = app.deploy_id
    assert running is not None
    app.service.updates.publish(StepsChanged(running, STEPS))
    await wait_for(pilot, lambda: app.steps.get(running) == STEPS, "the steps on screen")


def test_main_screen_80x24(snap_compare, tmp_path: Path) -> None:
    """80×24: two rows per list, the running deploy's steps (per job, the finished ones
    counted), and seven lines of its log following at the bottom; the footer keeps `?` and
    the keys that act, each drawn whole."""
    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(80, 24), run_before=_open_production
    )


def test_main_screen_120x40(snap_compare, tmp_path: Path) -> None:
    """120×40: the log below the lists gets half the rows; VM lines say which of production's
    two hosts they came from, GitHub lines which job."""
    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(120, 40), run_before=_open_production
    )


def test_main_screen_200x50(snap_compare, tmp_path: Path) -> None:
    """200×50: the log full height beside the lists, with the larger share of the width; the
    deploys table keeps every column ('rollback of 0202020' included), the message takes what
    is left; the environments' sparklines; the steps of both jobs in full."""
    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(200, 50), run_before=_open_production
    )


def test_zoomed_log_80x24(snap_compare, tmp_path: Path) -> None:
    """`l z` at 80×24: the log pane alone on the screen, status line and all."""

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        await pilot.press("l", "z")

    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(80, 24), run_before=run_before
    )


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    """`?` at 80×24: every key from the live bindings, greying those not possible right now,
    inside the screen; Enter (drill in) listed, the palette once."""

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        await pilot.press("question_mark")

    assert snap_compare(
        make_app(build_sample(tmp_path)), terminal_size=(80, 24), run_before=run_before
    )


def test_rollback_dialog_with_many_migrations_80x24(snap_compare, tmp_path: Path) -> None:
    """A rollback whose preflight names seven migrations, at 80×24: the facts scroll, the
    title and the y/n keys stay on screen."""
    sample = build_sample(tmp_path)
    history = History(sample.history)
    target, live = history.record(sample.ids["d2"]), history.record(sample.ids["d4"])
    files = tuple(f"db/migrate/2026110{n}_change_{n}.rb" for n in range(1, 8))
    preflight = Preflight(
        repo="acme/storefront",
        environment="production",
        strategy=RollbackStrategy.GITHUB,
        image="ghcr.io/acme/storefront",
        target=TargetInfo(target.deploy.sha, target, "Speed up cart", commit_found=True),
        live=live,
        image_check=ImageCheck(ImageState.PRESENT),
        migrations=MigrationCheck(files=files, compared="ahead"),
        checked_at=NOW,
    )

    async def check() -> Preflight:
        return preflight

    async def run_before(pilot: Pilot) -> None:
        await _open_production(pilot)
        pilot.app.push_screen(RollbackScreen("Roll back production?", check))
        await wait_for(
            pilot,
            lambda: isinstance(pilot.app.screen, RollbackScreen) and pilot.app.screen.checked,
            "the checked facts",
        )

    assert snap_compare(make_app(sample), terminal_size=(80, 24), run_before=run_before)


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
