"""A failed deploy's diagnosis above its log: one line (cause and fix) unless expanded.

Collapsed, it costs the log a single row at any size and its keys stay visible at the right
edge however long the cause is; `D` expands it to the cause, the fix and the line it came from.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from vmkit_tui.domain.models import Diagnosis
from vmkit_tui.domain.text import sanitise


class DiagnosisBanner(Horizontal):
    expanded: reactive[bool] = reactive(False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.diagnosis: Diagnosis | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="diagnosis-text", markup=False)
        yield Static(id="diagnosis-keys", markup=False)

    def show(self, diagnosis: Diagnosis | None) -> None:
        if diagnosis != self.diagnosis:
            self.expanded = False  # another deploy: back to one line
        self.diagnosis = diagnosis
        self.display = diagnosis is not None
        self._render_text()

    def watch_expanded(self) -> None:
        self.set_class(self.expanded, "-expanded")
        self._render_text()

    def _render_text(self) -> None:
        diagnosis = self.diagnosis
        if diagnosis is None or not self.is_mounted:
            return
        text = Text()
        text.append("✗ ", "bold")
        text.append(sanitise(diagnosis.cause), "bold")
        text.append("\nfix: " if self.expanded else " · fix: ")
        text.append(sanitise(diagnosis.fix))
        if self.expanded:
            text.append("\nfrom: ")
            text.append(sanitise(diagnosis.line)[:300])
        self.query_one("#diagnosis-text", Static).update(text)
        keys = "d: jump to line · D: less" if self.expanded else "d: jump · D: more"
        self.query_one("#diagnosis-keys", Static).update(Text(keys))
