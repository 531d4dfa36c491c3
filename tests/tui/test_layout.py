"""Every size readable, every key answers: the layout at 80×24, zoom, footer, help, read-only."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import DataTable, OptionList
from textual.widgets._footer import FooterKey

from tests.tui.factory import build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.domain.updates import StepProgress, StepsChanged
from vmkit_tui.frontends.tui.help import HelpScreen
from vmkit_tui.frontends.tui.hosts import short_names
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.frontends.tui.log_pane import LogPane


def visible_log_lines(lines: LogLines) -> int:
    """Log rows on screen: the view's height, clipped by the screen (not just laid out)."""
    shown = lines.scrollable_content_region.intersection(lines.screen.region)
    return min(shown.height, lines.row_count)


async def test_log_is_readable_at_80x24_without_a_key(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # the running deploy, focus on the deploys
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == 128, "the running deploy's log")
        assert visible_log_lines(lines) >= 6
        assert app.query_one("#deploys", DataTable).scrollable_content_region.height >= 2
        await pilot.press("j", "j")  # the failed one: its diagnosis takes one row, not four
        await wait_for(pilot, lambda: lines.row_count == 47, "the failed deploy's log")
        await pilot.pause()
        assert app.query_one("#log-diagnosis").outer_size.height == 1
        assert visible_log_lines(lines) >= 5


async def test_z_zooms_the_focused_pane_and_back(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "l")
        lines = app.query_one(LogLines)
        assert app.focused is lines
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is app.query_one(LogPane)
        assert visible_log_lines(lines) >= 18  # all but the header, status and footer rows
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None and visible_log_lines(lines) < 18
        await pilot.press("h", "z")  # a list zooms too
        await pilot.pause()
        assert app.screen.maximized is app.query_one("#deploys")
        await pilot.press("z", "h", "h", "z")  # the repos list, narrow in the layout
        await pilot.pause()
        repos = app.query_one("#repos")
        assert app.screen.maximized is repos
        assert repos.region.width == 80 and repos.region.height >= 20  # the whole screen


async def test_footer_shows_only_whole_keys_help_first(tmp_path: Path) -> None:
    for width in (80, 120, 200):
        app = make_app(build_sample(tmp_path / str(width)))
        async with app.run_test(size=(width, 30)) as pilot:
            await loaded(pilot)
            await pilot.press("enter", "enter")
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            palette = [k for k in keys if k.has_class("-command-palette")]
            others = [k for k in keys if k not in palette]
            assert palette and "?" in [k.key_display for k in others], width
            limit = palette[0].region.x
            assert all(k.region.right <= limit for k in others), (width, limit)
            if width == 200:  # room for every key
                assert {k.key_display for k in others} >= {"q", "r", "c", "o", "y", "z"}


async def test_help_fits_80x24_lists_enter_and_the_palette_once(tmp_path: Path) -> None:
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        table = app.screen.query_one("#help-keys", DataTable)
        await pilot.pause()
        assert table.region.right <= 80 and table.region.bottom <= 24
        rows = [" ".join(c.plain for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert sum("palette" in row.lower() for row in rows) == 1
        assert any("drill in" in row for row in rows)
        await pilot.press("end")
        assert table.scroll_x == 0 and table.scroll_y == table.max_scroll_y > 0


async def test_palette_offers_only_our_commands(tmp_path: Path) -> None:
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count >= 5, "the palette's commands")
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any("acme/storefront" in text for text in shown)
        assert not [t for t in shown if t.split()[0] in ("Theme", "Screenshot", "Keys")], shown


async def test_readonly_shows_in_the_header(tmp_path: Path) -> None:
    app = make_app(build_sample(tmp_path), readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert "READ-ONLY" in str(app.screen.query_one("HeaderTitle").render())


def test_short_host_names_stay_distinct() -> None:
    assert short_names(["web-1.acme.internal", "web-2.acme.internal"]) == {
        "web-1.acme.internal": "web-1",
        "web-2.acme.internal": "web-2",
    }
    assert short_names(["10.0.0.5", "10.0.0.6:2222"]) == {
        "10.0.0.5": "10.0.0.5",
        "10.0.0.6:2222": "10.0.0.6",
    }
    same_ip = ["127.0.0.1:43989", "127.0.0.1:41131"]  # the demo's VMs: only the port differs
    assert short_names(same_ip) == {h: h for h in same_ip}
    assert short_names(["web.a.example", "web.b.example"]) == {
        "web.a.example": "web.a.example",
        "web.b.example": "web.b.example",
    }


async def test_steps_of_a_running_deploy_show_per_job_at_80x24(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    steps = (
        StepProgress("build", "Build image", 1, "completed", "success"),
        *(StepProgress("deploy", f"Step number {n}", n, "completed", "success") for n in range(8)),
        StepProgress("deploy", "Deploy with Kamal", 9, "in_progress", None),
        StepProgress("deploy", "Complete job", 10, "queued", None),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        app.service.updates.publish(StepsChanged(sample.ids["d5"], steps))
        await wait_for(pilot, lambda: sample.ids["d5"] in app.steps, "the steps")
        await pilot.pause()
        details = app.query_one("#details")
        shown = details.render_lines(details.region.reset_offset)  # what is on screen
        text = ["".join(segment.text for segment in strip).strip() for strip in shown]
        assert text[0].startswith("build: Build image")
        assert text[1] == "deploy: ✓ 8 done › Deploy with Kamal › 1 more"


async def test_log_lines_name_the_host_only_when_there_are_several(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production: two hosts configured
        lines = app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == 128, "the running deploy's log")

        def last_row() -> str:
            row = lines.render_line(lines.scrollable_content_region.height - 1)
            return "".join(segment.text for segment in row)

        assert "kamal-proxy@203.0.113.10 green stays" in last_row()
        lines.set_hosts({"203.0.113.10": "203.0.113.10"})  # one host: nothing to tell apart
        assert "kamal-proxy green stays" in last_row()
