"""`?`: every key that works right now, read from the live bindings (so it never drifts)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Keys (greyed: not possible right now)", id="help-title", markup=False)
        yield DataTable(id="help-keys", cursor_type="none", show_header=True)

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one("#help-keys", DataTable)
        table.add_columns("Key", "Action", "Where")
        # The screen below is still the one the user was on: its bindings are the live ones.
        below = self.app.screen_stack[-2]
        rows: dict[tuple[str, str], tuple[str, str, bool]] = {}
        for key, active in below.active_bindings.items():
            binding = active.binding
            if binding.action in ("noop",):
                continue
            where = (
                type(active.node).__name__.replace("Table", "").replace("VmkitApp", "everywhere")
            )
            display = self.app.get_key_display(binding) if key == binding.key else key
            row_key = (binding.description or binding.action, where)
            if row_key in rows:
                rows[row_key] = (rows[row_key][0] + " " + display, where, active.enabled)
            else:
                rows[row_key] = (display, where, active.enabled)
        muted = self.get_component_rich_style("help--disabled", partial=True)
        for (description, _), (display, where, enabled) in sorted(
            rows.items(), key=lambda i: (i[1][1], i[0][0])
        ):
            style = None if enabled else muted
            table.add_row(
                Text(display, style or ""), Text(description, style or ""), Text(where, style or "")
            )
        table.add_row(
            Text("ctrl+p"),
            Text("Command palette: jump to a repo, environment or deploy"),
            Text("everywhere"),
        )

    COMPONENT_CLASSES: ClassVar[set[str]] = {"help--disabled"}

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
