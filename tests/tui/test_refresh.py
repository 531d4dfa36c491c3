"""How the log view keeps up with new lines: no screen-wide layout, the status line painted in
the same frame as the rows, and no repaint while help covers it."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from time import monotonic
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.details import DeployDetails
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.frontends.tui.tables import STEP, TOOK, WHEN, DeploysTable
from vmkit_tui.store.spool import LogRecord, SpoolWriter


async def grow(app: App[Any], data_dir: Path, deploy_id: str, count: int) -> None:
    """`count` more lines in the deploy's spool, announced as tracking announces them."""
    with SpoolWriter.for_deploy(data_dir, deploy_id) as spool:
        spool.append_many(
            LogRecord(NOW, "203.0.113.10", "vmkit-agent", f"tick {n}") for n in range(count)
        )
    app.query_one(LogLines).lines_grew()


def status(app: App[Any]) -> str:
    return str(app.query_one("#log-status", Static).content)


async def test_new_lines_while_following_need_no_layout_and_no_frame_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No screen-wide layout; and every frame painted shows the status line of the rows it
    paints (the status is not left to a later frame of its own)."""
    layouts: list[str] = []
    frames: list[bool] = []  # per frame: the status line counts the rows taken in
    refresh_layout, compositor_refresh = Screen._refresh_layout, Screen._compositor_refresh

    def counted_layout(screen: Screen[object], *args: object, **kwargs: object) -> None:
        layouts.append("layout")
        refresh_layout(screen, *args, **kwargs)  # type: ignore[arg-type]

    def counted_frame(screen: Screen[object]) -> None:
        lines = screen.app.query_one(LogLines)
        frames.append(f"{lines.row_count:,} lines" in status(screen.app))
        compositor_refresh(screen)

    monkeypatch.setattr(Screen, "_refresh_layout", counted_layout)
    monkeypatch.setattr(Screen, "_compositor_refresh", counted_frame)
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        lines = await open_log(pilot, app, deploy)  # production's running deploy, following
        await grow(app, sample.data_dir, deploy, 50)  # more than a screenful: it scrolls
        total = lines.row_count + 50
        await wait_for(pilot, lambda: f"{total:,} lines" in status(app), "the log grown")
        await pilot.pause()
        layouts.clear()
        frames.clear()
        for _ in range(3):
            await grow(app, sample.data_dir, deploy, 7)
            total += 7
            shown = f"{total:,} lines"
            await wait_for(pilot, lambda: shown in status(app), "the new lines")  # noqa: B023
            await wait_for(pilot, lambda: lines.scroll_y == lines.max_scroll_y > 0, "the end")
        await pilot.pause()
        assert layouts == []
        assert frames and all(frames)
        last = lines.line_at_row(int(lines.scroll_y) + lines.size.height - 1)
        assert last is not None and last.text == "tick 6"


async def test_no_repaint_under_help_and_caught_up_after(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        lines = await open_log(pilot, app, deploy)
        before = lines.shown_rows
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: not app.main.is_active, "help open")
        await grow(app, sample.data_dir, deploy, 5)
        await wait_for(pilot, lambda: lines._tick_timer is None, "the refresh timer fired")
        assert lines.shown_rows == before  # not taken in under help
        await pilot.press("escape")
        await wait_for(pilot, lambda: lines.shown_rows == before + 5, "caught up after help")
        assert f"{before + 5:,} lines" in status(app)


async def test_the_clock_updates_ages_and_running_times_only(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    moment = [NOW]
    app = make_app(sample, now=lambda: moment[0])
    async with app.run_test(size=(120, 36)) as pilot:  # all deploy columns shown
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production: the running deploy first
        table = app.query_one(DeploysTable)
        running = table.get_row(sample.ids["d5"])
        assert running[0].plain == "● running"
        moment[0] += timedelta(minutes=90)
        table.tick()
        await pilot.pause()
        later = table.get_row(sample.ids["d5"])
        assert later[WHEN].plain != running[WHEN].plain  # older
        assert later[TOOK].plain != running[TOOK].plain  # running 90 minutes longer
        assert [c.plain for n, c in enumerate(later) if n not in (WHEN, TOOK)] == [
            c.plain for n, c in enumerate(running) if n not in (WHEN, TOOK)
        ]


async def test_a_running_time_moves_in_steps_and_a_tick_without_change_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any cell update re-renders the whole table: the clock updates a cell only when its text
    changed, and a running time changes every STEP seconds, not every second."""
    sample = build_sample(tmp_path)
    moment = [NOW]
    app = make_app(sample, now=lambda: moment[0])
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production: the running deploy first
        table = app.query_one(DeploysTable)
        updated: list[object] = []
        update_cell = table.update_cell

        def counted(*args: Any, **kwargs: Any) -> None:
            updated.append(args[:2])
            update_cell(*args, **kwargs)

        monkeypatch.setattr(table, "update_cell", counted)
        took = []
        for _ in range(2 * STEP + 1):
            moment[0] += timedelta(seconds=1)
            table.tick()
            took.append(table.get_row(sample.ids["d5"])[TOOK].plain)
        changed = [n for n in range(1, len(took)) if took[n] != took[n - 1]]
        assert len(changed) == 2 and changed[1] - changed[0] == STEP, took
        assert len(updated) == len(changed)  # that one cell, at those ticks only


async def test_the_details_are_updated_only_when_their_text_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every change in the open environment asks for the details again; each update lays
    out the whole screen, so an unchanged text is not set again."""
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        details = app.query_one(DeployDetails)
        updates: list[object] = []
        update = details.update

        def counted(*args: Any, **kwargs: Any) -> None:
            updates.append(args)
            update(*args, **kwargs)

        monkeypatch.setattr(details, "update", counted)
        app._refresh_details()  # the same deploy, nothing new about it
        assert updates == []
        await pilot.press("j")  # another deploy: its own text
        await wait_for(pilot, lambda: len(updates) == 1, "the details of the next deploy")


async def test_a_key_up_while_following_stops_following_before_new_lines(tmp_path: Path) -> None:
    """`k` scrolls up with an animation: following must stop at the key, not after the move,
    or the next refresh scrolls back to the end over it."""
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "l")
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count > 0 and app.deploy_id == deploy, "its log")
        rows = lines.row_count + 50
        await grow(app, sample.data_dir, deploy, 50)
        await wait_for(pilot, lambda: lines.shown_rows == rows, "the lines taken in")
        await wait_for(pilot, lambda: lines.scroll_y == lines.max_scroll_y > 0, "at the end")
        assert lines.follow
        rows += 5
        lines.action_scroll_up()  # as `k` does, without waiting for the animation
        await grow(app, sample.data_dir, deploy, 5)
        await wait_for(pilot, lambda: lines.shown_rows == rows, "the new lines taken in")
        await pilot.pause()
        assert not lines.follow
        assert lines.scroll_y < lines.max_scroll_y - 5


async def test_a_follow_repaint_reads_and_lays_out_only_the_new_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows already shown are kept as they were painted (cut and offset): new lines that
    scroll the view read from the spool only the rows that came, not every row in view."""
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        lines = await open_log(pilot, app, deploy)
        rows = lines.row_count + 50
        await grow(app, sample.data_dir, deploy, 50)
        await wait_for(pilot, lambda: lines.shown_rows == rows, "the lines taken in")
        await wait_for(pilot, lambda: lines.scroll_y == lines.max_scroll_y > 0, "at the end")
        await pilot.pause()
        read = calls_of(monkeypatch, lines, "line_at_row")
        await grow(app, sample.data_dir, deploy, 3)
        await wait_for(pilot, lambda: lines.shown_rows == rows + 3, "the new lines taken in")
        await wait_for(pilot, lambda: lines.scroll_y == lines.max_scroll_y, "at the end")
        await pilot.pause()
        assert lines.size.height > 10  # a screenful of rows was repainted
        assert sorted(set(read)) == [rows, rows + 1, rows + 2], read


async def test_a_changed_cell_repaints_its_row_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running deploy's time moves: that row is rendered again, not the whole table
    (each row a DataTable renders after an update is laid out afresh, cell by cell)."""
    sample = build_sample(tmp_path)
    moment = [NOW]
    app = make_app(sample, now=lambda: moment[0])
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production: the running deploy first
        table = app.query_one(DeploysTable)
        await pilot.pause()
        rendered = calls_of(monkeypatch, table, "render_line")
        took = table.get_row(sample.ids["d5"])[TOOK].plain
        moment[0] += timedelta(seconds=STEP)
        table.tick()
        await wait_for(pilot, lambda: bool(rendered), "the table repainted")
        await pilot.pause()
        assert table.get_row(sample.ids["d5"])[TOOK].plain != took
        assert table.row_count > 3 and table.size.height > 3  # more rows on screen than one
        assert sorted(set(rendered)) == [1 + table.get_row_index(sample.ids["d5"])], rendered


async def test_a_flood_is_taken_in_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Following, every pick-up repaints each row in view: lines that keep coming are taken
    in a second apart, whatever their rate."""
    sample = build_sample(tmp_path)
    deploy = sample.ids["d5"]
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        lines = await open_log(pilot, app, deploy)
        ticks: list[float] = []
        timer_tick = lines._timer_tick

        def timed() -> None:
            ticks.append(monotonic())
            timer_tick()

        monkeypatch.setattr(lines, "_timer_tick", timed)
        rows = lines.shown_rows
        for _ in range(3):  # each batch as soon as the one before is on screen
            rows += 4
            await grow(app, sample.data_dir, deploy, 4)
            await wait_for(pilot, lambda: lines.shown_rows == rows, "the lines taken in")  # noqa: B023
        gaps = [later - earlier for earlier, later in pairwise(ticks)]
        assert len(gaps) == 2 and min(gaps) >= 0.95, gaps


def calls_of(monkeypatch: pytest.MonkeyPatch, widget: object, method: str) -> list[int]:
    """The argument of every call of `widget.method(n)` from now on (it still does its work)."""
    calls: list[int] = []
    original = getattr(widget, method)

    def counted(n: int) -> Any:
        calls.append(n)
        return original(n)

    monkeypatch.setattr(widget, method, counted)
    return calls


async def open_log(pilot: Pilot[None], app: VmkitApp, deploy: str) -> LogLines:
    """Open the first environment's newest deploy (`deploy`) and wait for its log lines."""
    await loaded(pilot)
    await pilot.press("enter", "enter")
    lines = app.query_one(LogLines)
    await wait_for(pilot, lambda: lines.row_count > 0 and app.deploy_id == deploy, "its log")
    return lines
