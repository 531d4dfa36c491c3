"""`/` on a list: narrow its rows to those containing the typed text (escape clears)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Input

from vmkit_tui.frontends.tui.tables import NavTable


class FilterScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", id="filter.clear")
    ]

    def __init__(self, table: NavTable) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        yield Input(
            value=self.table.filter_text,
            placeholder="filter (enter: keep, escape: clear)",
            id="filter-input",
        )

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value
        self.app.refresh_lists()  # type: ignore[attr-defined]

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.dismiss()

    def action_clear(self) -> None:
        self.table.filter_text = ""
        self.app.refresh_lists()  # type: ignore[attr-defined]
        self.dismiss()
