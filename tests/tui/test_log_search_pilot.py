"""Log search by keys: one search state per deploy, a match count and position, a marked
current match, and ⏎ jumping to the first match at or after the view."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from textual.widgets import Static

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.frontends.tui.log_search import SearchState
from vmkit_tui.store.spool import LogRecord, SpoolWriter

# d5's log: "compile line 0".."compile line 119", then 8 kamal-proxy lines. "compile line 1"
# matches line 1, 10..19 and 100..119: 31 matches.
TERM = "compile line 1"
MATCHES = [1, *range(10, 20), *range(100, 120)]


def status(app: VmkitApp) -> str:
    return str(app.query_one("#log-status", Static).render())


def visible(lines: LogLines, row: int) -> bool:
    return lines.scroll_y <= row < lines.scroll_y + lines.scrollable_content_region.height


async def open_running_log(pilot, app: VmkitApp) -> LogLines:  # type: ignore[no-untyped-def]
    await pilot.press("enter", "enter", "l")
    lines = app.query_one(LogLines)
    await wait_for(pilot, lambda: lines.row_count == 128, "the running deploy's 128 log lines")
    return lines


async def test_enter_jumps_to_the_first_match_at_or_after_the_view_and_counts(
    tmp_path: Path,
) -> None:
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        lines = await open_running_log(pilot, app)
        await pilot.press("g")  # top of the log
        lines.scroll_to(y=40, animate=False)  # rows 40.. on screen: no match in view
        await pilot.pause()
        assert not any(visible(lines, row) for row in MATCHES[:11])
        await pilot.press("slash", *TERM, "enter")
        await wait_for(pilot, lambda: lines._match_row is not None, "the first match")
        assert lines._match_row == 100  # the first at or after row 40, not line 1
        assert visible(lines, 100) and not lines.follow
        assert f"/{TERM} 12/31" in status(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: lines._match_row == 101, "the next match")
        assert f"/{TERM} 13/31" in status(app)
        await pilot.press("g", "N")  # from the current match, not from the view
        await wait_for(pilot, lambda: lines._match_row == 100, "the previous match")
        # the current match is marked: its row is drawn in the cursor colour, the others not
        cursor = lines.get_component_rich_style("loglines--cursor").bgcolor

        def marked(row: int) -> bool:
            strip = lines.render_line(row - int(lines.scroll_y))
            return sum(seg.style is not None and seg.style.bgcolor == cursor for seg in strip) > 1

        assert marked(100) and not marked(101)


async def test_a_search_stays_with_its_deploy_and_d_does_not_become_one(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        lines = await open_running_log(pilot, app)
        await pilot.press("slash", *TERM, "enter")
        await wait_for(pilot, lambda: "/31" in status(app), "the match count")
        await pilot.press("h", "j", "j")  # to the failed deploy
        assert app.deploy_id == sample.ids["d3"]
        await wait_for(pilot, lambda: lines.row_count == 47, "the failed deploy's log")
        assert lines.search_state.term == "" and "/" not in status(app)
        await pilot.press("d")  # jump to the diagnosis's line: marked, not a search
        assert lines._match_row == 6 and visible(lines, 6)
        assert lines.search_state.term == "" and "/" not in status(app)
        assert app.check_action("search_again", (True,)) is None  # no n/N without a search
        await pilot.press("h", "k", "k")  # back to the running deploy: its search ended too
        assert app.deploy_id == sample.ids["d5"]
        assert lines.search_state.term == "" and lines._match_row is None


async def test_count_follows_the_source_filter_and_the_growing_log(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        lines = await open_running_log(pilot, app)
        await pilot.press("slash", *TERM, "enter")
        await wait_for(pilot, lambda: "/31" in status(app), "the match count")
        with SpoolWriter.for_deploy(sample.data_dir, sample.ids["d5"]) as spool:
            spool.append_many(
                LogRecord(NOW + timedelta(seconds=n), "build", "github", f"compile line 1{n}x")
                for n in range(3)
            )
        lines.lines_grew()
        await wait_for(pilot, lambda: lines.row_count == 131, "the new lines")
        await pilot.press("n")  # n searches the new lines too
        await wait_for(pilot, lambda: "/34" in status(app), "the count with the new lines")
        await pilot.press("s", "s", "s")  # kamal-proxy only: none of its lines match
        await wait_for(pilot, lambda: "no match" in status(app), "the count in this view")
        assert lines._match_row is None


def test_moving_through_matches_wraps_around() -> None:
    state = SearchState("x")
    state.add([3, 8, 20], scanned=30)
    assert state.move("first", top=9) == 20 and state.label() == "3/3"
    assert state.move("next", top=0) == 3 and state.label() == "1/3"  # wraps to the top
    assert state.move("previous", top=0) == 20
    assert state.move("first", top=21) == 3  # nothing after the view: the first one
    fresh = SearchState("x")
    fresh.add([3, 8, 20], scanned=30)
    assert fresh.move("previous", top=9) == 8  # the last before the view
    assert SearchState("X").case_sensitive and not SearchState("x").case_sensitive
