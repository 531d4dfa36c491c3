"""Every key answers: refused keys say why, a list filter shows in its pane's title, `o`
without a browser shows the URL, and the wording says each thing once."""

from __future__ import annotations

import webbrowser
from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.actions.cancel import CancelPreflight
from vmkit_tui.actions.preflight import MigrationCheck, Preflight, TargetInfo
from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.models import Deploy, DeployEvent, DeployRecord, EventKind, Status, Trigger
from vmkit_tui.frontends.tui.browser import RunUrlScreen, open_in_browser
from vmkit_tui.frontends.tui.confirm import CancelScreen, RollbackScreen
from vmkit_tui.sources.github.results import ImageCheck, ImageState


def said(app: App[None]) -> list[str]:
    """What the notifications on screen say (title and message)."""
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_refused_keys_say_why_in_read_only_mode(tmp_path: Path) -> None:
    app = make_app(build_sample(tmp_path), readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")  # production's deploys: the running one selected
        await pilot.press("r")
        await wait_for(pilot, lambda: said(app), "a notification for r")
        assert said(app) == ["Not rolled back: Read-only mode (--readonly): rolling back is off."]
        app.clear_notifications()
        await pilot.press("c")
        await wait_for(pilot, lambda: said(app), "a notification for c")
        assert said(app) == ["Not cancelled: Read-only mode (--readonly): cancelling is off."]
        keys = {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}
        assert "rollback" not in keys and "cancel_deploy" not in keys  # still hidden


async def test_cancel_on_a_finished_deploy_says_there_is_nothing_to_cancel(
    tmp_path: Path,
) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample, keymap={"deploy.cancel": "x"})  # the answer moves with the key
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "j", "j")
        assert app.deploy_id == sample.ids["d3"]
        await pilot.press("x")
        await wait_for(pilot, lambda: said(app), "a notification")
        assert said(app) == ["Not cancelled: Nothing to cancel: 0303030 has failed."]


async def test_a_list_filter_shows_in_the_title_and_escape_clears_it(tmp_path: Path) -> None:
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "slash", *"roll", "enter")  # kept after ⏎
        table = app.query_one("#deploys", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "one row left")
        assert app.focused is table
        assert table.border_title == "Deploys · production · /roll (1 of 5)"
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 5, "all rows back")
        assert table.border_title == "Deploys · production"


async def test_o_without_a_browser_shows_the_url_and_copies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_browser(using: str | None = None) -> webbrowser.BaseBrowser:
        raise webbrowser.Error("could not locate runnable browser")  # as over SSH

    monkeypatch.setattr(webbrowser, "get", no_browser)
    sample = build_sample(tmp_path)
    app = make_app(sample)
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "o")
        await wait_for(pilot, lambda: isinstance(app.screen, RunUrlScreen), "the URL dialog")
        url = "https://github.com/acme/storefront/actions/runs/1005"
        assert url in str(app.screen.query_one("#confirm-facts", Static).render())
        assert not any("opened" in line for line in said(app))  # no claim of a browser
        await pilot.press("y")
        assert copied == [url] and not isinstance(app.screen, RunUrlScreen)


def test_a_console_browser_is_no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SSH `webbrowser` falls back to lynx or w3m: it would take over this terminal."""
    monkeypatch.delenv("BROWSER", raising=False)
    monkeypatch.setattr(webbrowser, "get", lambda using=None: webbrowser.GenericBrowser("lynx"))
    assert open_in_browser("https://example.invalid/") is False


def preflight(**changes: object) -> Preflight:
    sample_live = build_record("0000000000aa", Status.SUCCEEDED)
    base = Preflight(
        repo="acme/storefront",
        environment="production",
        strategy=RollbackStrategy.GITHUB,
        image="ghcr.io/acme/storefront",
        target=TargetInfo("02" * 20, message="Speed up cart"),
        live=sample_live,
        image_check=ImageCheck(ImageState.PRESENT),
        migrations=MigrationCheck(compared="ahead"),
        checked_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def build_record(deploy_id: str, status: Status) -> DeployRecord:
    deploy = Deploy(
        id=deploy_id,
        repo="acme/storefront",
        environment="production",
        sha="05" * 20,
        triggered_by=Trigger.MANUAL,
        actor="maria-chen",
        created_at=NOW,
    )
    created = {"title": "Speed up cart"}
    events = [
        DeployEvent(f"{deploy_id}:c", deploy_id, 1, NOW, EventKind.CREATED, None, "", created)
    ]
    if status is not Status.PENDING:
        events.append(
            DeployEvent(f"{deploy_id}:s", deploy_id, 2, NOW, EventKind.STATUS, status, "", {})
        )
    return DeployRecord(deploy, tuple(events))


async def facts_of(screen: ModalScreen[bool]) -> str:
    app = App[None]()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.checked is not None, "the facts")  # type: ignore[attr-defined]
        return str(screen.query_one("#confirm-facts", Static).render())


async def test_the_rollback_dialog_says_when_no_migrations_lie_between() -> None:
    async def none() -> Preflight:
        return preflight()

    async def some() -> Preflight:
        return preflight(migrations=MigrationCheck(files=("db/migrate/1_x.rb",), compared="ahead"))

    assert "no migrations between the two" in await facts_of(RollbackScreen("Roll back?", none))
    facts = await facts_of(RollbackScreen("Roll back?", some))
    assert "no migrations" not in facts and "1 migration file(s) changed" in facts


async def test_the_cancel_dialog_warns_about_the_kamal_swap_once() -> None:
    running = build_record("0000000000bb", Status.RUNNING)

    async def check() -> CancelPreflight:
        return CancelPreflight(running, None, NOW, kamal_step="Deploy with Kamal")

    facts = await facts_of(CancelScreen("Cancel this deploy?", check))
    assert facts.count("complete anyway") == 1 and facts.count("roll back afterwards") == 1


async def test_a_rollback_row_says_what_it_rolled_back_to_once(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        table = app.query_one("#deploys", DataTable)
        row = " ".join(cell.plain for cell in table.get_row(sample.ids["d4"]))
        assert row.count("0202020") == 1 and "rollback of" not in row
