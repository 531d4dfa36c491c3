"""`?`: every key that works right now, read from the live bindings (so it never drifts)."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

# DataTable's own column-wise bindings mean nothing in row-cursor lists.
_NOT_SHOWN = frozenset({"noop", "cursor_left", "cursor_right", "page_left", "page_right"})
# Bindings whose own description says little here.
_DESCRIPTIONS = {
    "select_cursor": "Open: drill in (repo → environments → deploys → log)",
    "command_palette": "Command palette: go to any repo, environment, deploy",
}
_WHERE = {
    "VmkitApp": "everywhere",
    "Screen": "everywhere",
    "ReposTable": "lists",
    "EnvironmentsTable": "lists",
    "DeploysTable": "lists",
    "LogLines": "log",
}


class KeysTable(DataTable[Text]):
    """Home/End move through the list, not sideways (there is nothing to the side)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home,g", "scroll_home", "Top", show=False),
        Binding("end,G", "scroll_end", "Bottom", show=False),
    ]

    def action_scroll_home(self) -> None:
        self.scroll_to(y=0, animate=False)

    def action_scroll_end(self) -> None:
        self.scroll_to(y=self.max_scroll_y, animate=False)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Keys (greyed: not possible right now)", id="help-title", markup=False)
        yield KeysTable(id="help-keys", cursor_type="none", show_header=True)

    def on_mount(self) -> None:
        table = self.query_one(KeysTable)
        table.add_columns("Where", "Key", "Action")
        # The screen below is still the one the user was on: its bindings are the live ones.
        below = self.app.screen_stack[-2]
        rows: dict[tuple[str, str], tuple[list[str], bool]] = {}
        for key, active in below.active_bindings.items():
            binding = active.binding
            if binding.action in _NOT_SHOWN:
                continue
            where = _WHERE.get(type(active.node).__name__, "this pane")
            display = self.app.get_key_display(binding) if key == binding.key else key
            description = _DESCRIPTIONS.get(binding.action, binding.description or binding.action)
            keys, _ = rows.setdefault((where, description), ([], active.enabled))
            keys.append(display)
        for (where, description), (keys, enabled) in sorted(rows.items()):
            style = Style() if enabled else Style(dim=True, italic=True)
            table.add_row(Text(where, style), Text(" ".join(keys), style), Text(description, style))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
