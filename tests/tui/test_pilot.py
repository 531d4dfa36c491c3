"""Driving the app by keys, as a user would, over a deterministic history and spools."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList

from tests.tui.factory import HEALTH, build_sample, make_app
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.corrupt import CorruptHistoryScreen
from vmkit_tui.frontends.tui.help import HelpScreen
from vmkit_tui.frontends.tui.log_lines import LogLines


async def wait_for(
    pilot: Pilot, predicate: Callable[[], object], what: str, timeout: float = 10.0
) -> None:
    """Wait on a condition (never a fixed sleep); fail saying what did not happen."""

    async def poll() -> None:
        while not predicate():
            await pilot.pause(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        pytest.fail(f"timed out waiting for: {what}")


async def loaded(pilot: Pilot) -> VmkitApp:
    app = pilot.app
    assert isinstance(app, VmkitApp)
    await wait_for(
        pilot, lambda: app.query_one("#deploys", DataTable).row_count > 0, "deploys on screen"
    )
    return app


async def test_navigate_repo_environment_deploy_by_keys(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        assert app.focused is app.query_one("#repos")
        await pilot.press("enter")  # repo → environments
        assert app.focused is app.query_one("#environments")
        await pilot.press("j")  # staging
        assert app.environment == "staging"
        await pilot.press("k", "enter")  # back to production, into its deploys
        assert app.environment == "production" and app.focused is app.query_one("#deploys")
        assert app.deploy_id == sample.ids["d5"]  # newest first
        await pilot.press("j", "j")
        assert app.deploy_id == sample.ids["d3"]
        await pilot.press("G")
        assert app.deploy_id == sample.ids["d1"]
        await pilot.press("g", "l")
        assert app.deploy_id == sample.ids["d5"]
        assert isinstance(app.focused, LogLines)
        await pilot.press("h")
        assert app.focused is app.query_one("#deploys")
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused is app.query_one("#repos")
        await pilot.press("j")  # acme/billing-api, whose environment is also called production
        assert app.repo == "acme/billing-api"
        assert app.query_one("#environments", DataTable).row_count == 1
        assert app.environment == "production"
        assert app.deploy_id == sample.ids["d8"]  # its own deploys, not storefront's


async def test_failed_deploy_shows_diagnosis_and_jumps_to_its_line(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "j", "j")
        assert app.deploy_id == sample.ids["d3"]
        banner = app.query_one("#log-diagnosis")
        details = str(app.query_one("#diagnosis-text").render())
        assert "Health check timed out" in details and "bind the server to 0.0.0.0:$PORT" in details
        assert banner.outer_size.height == 1 and "from:" not in details  # one line, collapsed
        assert "d: jump" in str(app.query_one("#diagnosis-keys").render())
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == 47, "the failed deploy's 47 log lines")
        await pilot.press("d")
        assert app.focused is lines and not lines.follow
        assert lines.line_at_row(6) is not None and lines.line_at_row(6).text == HEALTH.line  # type: ignore[union-attr]
        assert lines.scroll_y <= 6 < lines.scroll_y + lines.scrollable_content_region.height
        # the line it jumped to is marked: its background is the cursor's, not the log's
        await pilot.pause()
        cursor = lines.get_component_rich_style("loglines--cursor").bgcolor
        row = lines.render_line(6 - int(lines.scroll_y))
        assert cursor is not None and all(seg.style.bgcolor == cursor for seg in row if seg.style)
        await pilot.press("D")  # expanded: cause, fix and the line, on several rows
        await pilot.pause()
        assert banner.outer_size.height >= 3
        assert "from: " + HEALTH.line in str(app.query_one("#diagnosis-text").render())


async def test_log_search_finds_next_and_previous_without_freezing(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "l")
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == 128, "the running deploy's 128 log lines")
        assert lines.follow
        await pilot.press("slash", *"compile line 10", "enter")
        await wait_for(pilot, lambda: lines._match_row is not None, "a search match")
        first = lines._match_row
        assert lines.line_at_row(first).text.startswith("compile line 10")  # type: ignore[union-attr]
        assert not lines.follow  # jumping to a match stops following
        await pilot.press("n")
        await wait_for(pilot, lambda: lines._match_row != first, "the next match")
        second = lines._match_row
        assert second is not None and second > first
        assert lines.line_at_row(second).text.startswith("compile line 10")  # type: ignore[union-attr]
        await pilot.press("N")
        await wait_for(pilot, lambda: lines._match_row == first, "back to the previous match")
        await pilot.press("f")
        assert lines.follow


async def test_hostile_remote_text_is_shown_literally_and_inert(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        assert app.deploy_id == sample.ids["d5"]
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == 128, "log lines")
        rendered = []
        for row in range(lines.row_count - 8, lines.row_count):
            strip = lines._render_row(lines.line_at_row(row), False)  # type: ignore[arg-type]
            rendered.append("".join(segment.text for segment in strip))
        text = "\n".join(rendered)
        assert "[/]" in text and "[@click=app.quit]click me" in text
        assert "\x1b" not in text and "\x9d" not in text and "evil.example" not in text
        assert "green stays" in text and "pwned-title" not in text
        table = app.query_one("#deploys", DataTable)
        cells = "".join(str(cell) for cell in table.get_row_at(0))
        assert "Fix [/] parsing [@click" in cells and "\x1b" not in cells
        await pilot.click("#deploys", offset=(30, 1))  # click the hostile title: nothing runs
        await pilot.press("j", "k")
        assert app.is_running


async def test_list_filter_narrows_rows(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "slash", *"checkout")
        table = app.query_one("#deploys", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "one row left")
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 5, "all rows back")


async def test_help_is_generated_from_live_bindings(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = [
            " ".join(cell.plain for cell in table.get_row_at(i)) for i in range(table.row_count)
        ]
        joined = "\n".join(rows)
        for expected in ("Copy SHA", "Follow", "Open run", "Quit", "Command palette"):
            assert expected in joined
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_corrupt_history_offers_to_move_it_aside(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    original = sample.history.read_bytes()[:-40]
    sample.history.write_bytes(original)  # truncated
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CorruptHistoryScreen),
            "the corrupt-history screen",
        )
        assert sample.history.read_bytes() == original  # untouched while asking
        await pilot.press("m")
        await wait_for(pilot, lambda: not sample.history.exists(), "the file moved aside")
        aside = list(tmp_path.glob("history.json.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == original


async def test_no_configuration_says_what_to_do(tmp_path: Path) -> None:
    from vmkit_tui.config import Config
    from vmkit_tui.service import DeployService
    from vmkit_tui.store.history import AsyncHistory, History

    service = DeployService(
        Config(source=None), AsyncHistory(History(tmp_path / "h.json")), tmp_path
    )
    app = VmkitApp(service, spinners=False)
    async with app.run_test(size=(100, 30)) as pilot:
        problems = app.query_one("#problems")
        await wait_for(pilot, lambda: problems.display, "the empty-state message")
        assert "vmkit-tui demo" in str(problems.render())


async def test_keys_can_be_remapped_from_the_config(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample, keymap={"app.help": "f1", "log.follow": "F2"})
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)  # the old key no longer opens help
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_palette_jumps_to_a_deploy_by_sha_and_to_an_environment(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+p", *"0303")  # part of the failed deploy's SHA
        await wait_for(
            pilot, lambda: "0303" in str(app.screen.query("Input").first().value), "typed"
        )
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.deploy_id == sample.ids["d3"], "the deploy selected")
        await pilot.press("ctrl+p", *"staging")
        await wait_for(pilot, lambda: app.screen.query_one(OptionList).option_count > 0, "hits")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.environment == "staging", "the environment selected")
        assert app.repo == "acme/storefront"
