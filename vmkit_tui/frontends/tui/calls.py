"""`@`: the command log — every GitHub request and SSH command this session made, newest first.

It follows while open: new calls are appended to the table (at most four times a second) and
the rows are re-ordered, never rebuilt; a cursor on the newest row stays on the newest, one
further down stays on its call. `/` filters (rebuilding the rows once per change).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from vmkit_tui.domain.calls import RING_SIZE, Call, CallLog
from vmkit_tui.store.calls import CallFile

_REFRESH = 0.25  # seconds between appends while calls arrive
_COLUMNS = (
    ("#", "seq"),
    ("When (UTC)", "when"),
    ("Kind", "kind"),
    ("Result", "result"),
    ("Took", "took"),
    ("Rate left", "left"),
    ("Host", "host"),
    ("Call", "what"),
)


def _row(call: Call) -> tuple[object, ...]:
    """The cells of one call, short ones first (a long command is the last column)."""
    left = "" if call.remaining is None else str(call.remaining)
    result = call.outcome
    if call.status is not None and call.note:
        result = f"{result} · {call.note}"
    return (
        call.seq,
        Text(call.when),
        Text(call.kind),
        Text(result),
        Text(f"{call.duration * 1000:.0f} ms"),
        Text(left),
        Text(call.host),
        Text(call.what),
    )


class CallsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,at", "close", "Close", id="calls.close"),
        Binding("slash", "filter", "Filter", id="calls.filter"),
    ]

    def __init__(self, log: CallLog, file: CallFile | None) -> None:
        super().__init__()
        self.call_log = log
        self.file = file
        self.filter_text = ""
        self._new: list[Call] = []
        self._stop_listening = log.listen(self._new.append)

    def compose(self) -> ComposeResult:
        with Vertical(id="calls-box"):
            yield Static(id="calls-title", markup=False)
            yield Input(placeholder="filter (enter: keep, escape: clear)", id="calls-filter")
            yield DataTable(id="calls-table", cursor_type="row")

    def on_mount(self) -> None:
        table: DataTable[object] = self.query_one(DataTable)
        for label, key in _COLUMNS:
            table.add_column(label, key=key)
        self.query_one(Input).display = False
        self._fill()
        self.set_interval(_REFRESH, self._append)
        table.focus()

    def on_unmount(self) -> None:
        self._stop_listening()

    def _title(self, shown: int) -> str:
        where = ""
        if self.file is not None:
            where = f" · {self.file.error or f'saved in {self.file.folder}'}"
        matching = f" matching “{self.filter_text}”" if self.filter_text else ""
        return f"Calls, newest first: {shown}{matching} (of the last {RING_SIZE}){where}"

    def _fill(self) -> None:
        """All rows again, for the filter (the only rebuild)."""
        table: DataTable[object] = self.query_one(DataTable)
        table.clear()
        self._new.clear()
        needle = self.filter_text.lower()
        for call in self.call_log.calls():
            if call.matches(needle):
                table.add_row(*_row(call), key=str(call.seq))
        table.sort("seq", reverse=True)
        table.move_cursor(row=0, animate=False)
        self.query_one("#calls-title", Static).update(self._title(table.row_count))

    def _append(self) -> None:
        """The calls heard since the last look, added at the top; the oldest dropped beyond
        the ring's size."""
        if not self._new:
            return
        table: DataTable[object] = self.query_one(DataTable)
        needle = self.filter_text.lower()
        fresh, self._new = [c for c in self._new if c.matches(needle)], []
        if not fresh:
            return
        row = table.cursor_row
        for call in fresh:
            table.add_row(*_row(call), key=str(call.seq))
        oldest = fresh[-1].seq - RING_SIZE
        for key in [k for k in table.rows if int(k.value or 0) <= oldest]:
            table.remove_row(key)
        table.sort("seq", reverse=True)
        if row > 0:  # reading further down: stay on the same call
            table.move_cursor(row=min(row + len(fresh), table.row_count - 1), animate=False)
        self.query_one("#calls-title", Static).update(self._title(table.row_count))

    def action_filter(self) -> None:
        field = self.query_one(Input)
        field.display = True
        field.focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._fill()

    @on(Input.Submitted)
    def _filter_kept(self) -> None:
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        field = self.query_one(Input)
        if self.focused is field:  # escape in the filter: clear it, back to the list
            field.value = ""
            field.display = False
            self.query_one(DataTable).focus()
            return
        self.dismiss()
