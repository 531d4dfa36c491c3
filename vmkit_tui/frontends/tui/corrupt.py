"""The history file is damaged: say what and where, and offer the only safe way on.

Nothing is ever rewritten in place: `m` renames the file to `<name>.corrupt-<UTC time>` (kept
for inspection or repair) and a fresh history starts; `q` quits with the file untouched.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from vmkit_tui.domain.text import sanitise


class CorruptHistoryScreen(ModalScreen[bool]):
    """Dismisses with True when the user chose to move the file aside."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "move_aside", "Move aside, start fresh", id="corrupt.move_aside"),
        Binding("q,escape", "quit_app", "Quit, leave the file", id="corrupt.quit"),
    ]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="corrupt-box"):
            yield Static(
                Text("The deploy history cannot be read", style="bold"), id="corrupt-title"
            )
            yield Static(Text(sanitise(self.message)), id="corrupt-message")
            yield Static(
                Text(
                    "The file has not been changed. Press m to rename it to <name>.corrupt-<UTC time> "
                    "and start a fresh history (the old file stays for you to inspect or repair), "
                    "or q to quit and leave everything as it is."
                ),
                id="corrupt-advice",
            )

    def action_move_aside(self) -> None:
        self.dismiss(True)

    def action_quit_app(self) -> None:
        self.app.exit(return_code=2)
