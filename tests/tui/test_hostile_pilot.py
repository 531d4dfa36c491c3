"""Hostile remote text through the sandbox to the TUI: a pushed commit whose message carries a
token, a bidi override, a zero-width space, markup and an OSC 52 clipboard write (recorded by
tracking from the sandbox GitHub), and a log line of that deploy with the same. The deploys table,
details, log pane and palette show the sanitised text; the history keeps the original bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import DataTable, Input, OptionList

from tests.tui.test_demo_pilot import runtime, seeded_config  # noqa: F401 (the fixture)
from tests.tui.test_pilot import wait_for
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.details import DeployDetails
from vmkit_tui.frontends.tui.log_lines import LogLines
from vmkit_tui.sandbox.commands import sandbox_service
from vmkit_tui.sandbox.demo import SandboxRuntime
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.history import History
from vmkit_tui.store.spool import LogRecord, SpoolWriter

REPO = "acme/storefront"
TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
HOSTILE = f"{TOKEN} \u202e\u200bexe [@click=app.quit]x \x1b]52;c;cm0gLXJmIH4=\x07"
LOG_LINE = f"\x1b[32mpushed {TOKEN}\x1b[0m \u202eevil\u200b [@click=app.quit]x\x1b]52;c;eA==\x07"
RAW = (TOKEN, "\u202e", "\u200b", "\x1b", "\x07", "cm0gLXJmIH4")


def assert_sanitised(shown: str, where: str) -> None:
    for raw in RAW:
        assert raw not in shown, f"{raw!r} shown in the {where}"
    for kept in ("[REDACTED]", "⟨U+202E⟩", "⟨U+200B⟩", "[@click"):  # cut to fit in some
        assert kept in shown, f"{kept!r} missing from the {where}: {shown!r}"


async def test_hostile_text_from_the_sandbox_is_sanitised_on_every_surface(
    runtime: SandboxRuntime,  # noqa: F811 (the fixture)
) -> None:
    config = seeded_config(runtime)
    assert config.history_path is not None and config.data_dir is not None

    def push(world: World) -> None:
        world.push(REPO, "staging", message=HOSTILE)

    runtime.run_in_sandbox(push)
    service = sandbox_service(config, runtime)
    app = VmkitApp(service, now=runtime.now, spinners=False)
    history = History(config.history_path)

    def hostile() -> DeployRecord | None:
        return next((r for r in history.records(REPO, "staging") if TOKEN in r.title), None)

    try:
        async with app.run_test(size=(260, 50)) as pilot:  # room for the whole title
            await wait_for(pilot, hostile, "the push recorded by tracking", timeout=30)
            record = hostile()
            assert record is not None and record.title == HOSTILE  # stored as GitHub sent it
            with SpoolWriter.for_deploy(config.data_dir, record.id) as writer:
                writer.append(LogRecord(datetime.now(UTC), "deploy", "github", LOG_LINE))
            # The first environment's deploys are shown before the whole history is read: a
            # deploy of another environment can be selected once the dashboard has it.
            await wait_for(pilot, lambda: app.overview.find(record.id) is not None, "its record")
            table = app.main.query_one("#deploys", DataTable)
            await wait_for(pilot, lambda: table.row_count > 0, "deploys")
            app.select(REPO, "staging", record.id)
            await wait_for(pilot, lambda: app.deploy_id == record.id, "the hostile deploy")

            row = " ".join(cell.plain for cell in table.get_row(record.id))
            assert_sanitised(row, "deploys table")
            details = app.main.query_one(DeployDetails)
            await wait_for(pilot, lambda: details.record is not None, "details")
            assert_sanitised(details._render_text().plain, "details pane")

            lines = app.query_one(LogLines)

            def hostile_row() -> int | None:
                texts = [getattr(lines.line_at_row(i), "text", "") for i in range(lines.row_count)]
                return next((i for i, text in enumerate(texts) if "pushed" in text), None)

            await wait_for(pilot, lambda: hostile_row() is not None, "the hostile log line")
            line = lines.line_at_row(hostile_row() or 0)
            assert line is not None
            shown = "".join(segment.text for segment in lines._render_row(line, False))
            assert_sanitised(shown, "log pane")

            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: app.screen.query(OptionList), "the palette")
            app.screen.query_one(Input).value = "redacted"  # one search, not one per key
            options = app.screen.query_one(OptionList)

            def first_hit() -> str:
                return str(options.get_option_at_index(0).prompt) if options.option_count else ""

            await wait_for(pilot, lambda: first_hit().startswith("deploy "), "a deploy's hit")
            prompt = first_hit()
            assert_sanitised(str(prompt), "palette")
            await pilot.press("escape")

            assert app.is_running
    finally:
        await service.stop()
