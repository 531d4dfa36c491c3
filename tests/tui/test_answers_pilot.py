"""Every key answers: refused keys say why, a list filter shows in its pane's title, `o`
without a browser shows the URL, and the wording says each thing once."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from tests.tui.factory import build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for


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
