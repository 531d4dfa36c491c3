"""How the log view keeps up with new lines: no screen-wide layout, one frame per refresh
(rows and status line together), and no repaint while help covers it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.store.spool import LogRecord, SpoolWriter


def counting(calls: list[str], name: str, method: Callable[..., object]) -> Callable[..., object]:
    def counted(*args: object, **kwargs: object) -> object:
        calls.append(name)
        return method(*args, **kwargs)

    return counted


async def grow(pilot: Pilot, data_dir: Path, deploy_id: str, count: int) -> None:
    """`count` more lines in the deploy's spool, announced as tracking announces them."""
    with SpoolWriter.for_deploy(data_dir, deploy_id) as spool:
        spool.append_many(
            LogRecord(NOW, "203.0.113.10", "vmkit-agent", f"tick {n}") for n in range(count)
        )
    pilot.app.query_one(LogLines).lines_grew()


def status(pilot: Pilot) -> str:
    return str(pilot.app.query_one("#log-status", Static).content)


async def test_new_lines_while_following_need_no_layout_and_one_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("_refresh_layout", "_compositor_refresh"):
        monkeypatch.setattr(Screen, name, counting(calls, name, getattr(Screen, name)))
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production's running deploy, its log following
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count > 0 and app.deploy_id == deploy, "its log")
        await grow(pilot, sample.data_dir, deploy, 50)  # more than a screenful: it scrolls
        total = lines.row_count + 50
        await wait_for(pilot, lambda: f"{total:,} lines" in status(pilot), "the log grown")
        await pilot.pause()
        calls.clear()
        for _ in range(3):
            await grow(pilot, sample.data_dir, deploy, 7)
            total += 7
            await wait_for(pilot, lambda n=total: f"{n:,} lines" in status(pilot), "the new lines")
            await wait_for(pilot, lambda: lines.scroll_y == lines.max_scroll_y > 0, "the end")
        await pilot.pause()
        assert "_refresh_layout" not in calls
        assert calls.count("_compositor_refresh") == 3  # rows, scrollbar, status: one frame
        assert lines.line_at_row(int(lines.scroll_y) + lines.size.height - 1).text == "tick 6"  # type: ignore[union-attr]


async def test_no_repaint_under_help_and_caught_up_after(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count > 0 and app.deploy_id == deploy, "its log")
        before = lines.shown_rows
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: not app.main.is_active, "help open")
        await grow(pilot, sample.data_dir, deploy, 5)
        await wait_for(pilot, lambda: lines._tick_timer is None, "the refresh timer fired")
        assert lines.shown_rows == before  # not taken in under help
        await pilot.press("escape")
        await wait_for(pilot, lambda: lines.shown_rows == before + 5, "caught up after help")
        assert f"{before + 5:,} lines" in status(pilot)
