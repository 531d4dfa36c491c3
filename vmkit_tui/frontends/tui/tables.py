"""The three navigable lists: repos, environments of a repo, deploys of an environment.

Every cell is a `rich.text.Text` built from sanitised values: a DataTable parses plain strings
as markup, and commit messages or actor names come from outside. Colours come from component
classes styled in `styles/app.tcss`, never from Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.overview import EnvironmentSummary, sparkline
from vmkit_tui.domain.text import plain
from vmkit_tui.frontends.present import format_age, format_duration

STATUS_GLYPHS = {
    Status.PENDING: "○",
    Status.RUNNING: "●",
    Status.CANCELLING: "◌",
    Status.SUCCEEDED: "✓",
    Status.FAILED: "✗",
    Status.CANCELLED: "⊘",
}


def clip(text: str, width: int) -> str:
    text = plain(text)
    return text if len(text) <= width else text[: width - 1] + "…"


class NavTable(DataTable[Text]):
    """A row-cursor table with vim keys, whose rows are keyed by a stable id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    class Chosen(Message):
        """The cursor rests on a row (moved, or the rows changed under it)."""

        def __init__(self, table: NavTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> NavTable:
            return self.table

    # Columns (label, wide-only) and the width below which wide-only columns are dropped.
    COLUMNS: ClassVar[tuple[tuple[str, bool], ...]] = ()
    COMPACT_BELOW: ClassVar[int] = 0

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.filter_text = ""
        self._last_key: str | None = None
        self._compact: bool | None = None
        self._rows: Sequence[tuple[str, Sequence[Text]]] = ()
        self._shown: list[tuple[str, list[Text]]] = []  # what the table holds now
        self._rebuilding = False

    def on_resize(self) -> None:
        compact = self.size.width < self.COMPACT_BELOW
        if compact != self._compact:
            self._compact = compact
            self.clear(columns=True)
            self._shown = []
            self.add_columns(*(label for label, wide in self.COLUMNS if not (compact and wide)))
            self.set_rows(self._rows)

    def _visible(self, cells: Sequence[Text]) -> list[Text]:
        if not self._compact:
            return list(cells)
        return [cell for cell, (_, wide) in zip(cells, self.COLUMNS, strict=True) if not wide]

    @property
    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:  # an out-of-range cursor just means no row
            return None
        return row_key.value

    def style_of(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Text]]], keep: str | None = None) -> None:
        """Show `rows`, keeping the cursor on the same key where it still exists.

        Rows arrive many times a second while tracking catches up: when the same keys are shown
        in the same order, only changed cells are updated, so the cursor and scroll never move."""
        self._rows = rows
        if self._compact is None:  # not laid out yet: on_resize adds columns and rows
            return
        needle = self.filter_text.casefold()
        shown = [
            (key, self._visible(cells))
            for key, cells in rows
            if not needle or any(needle in cell.plain.casefold() for cell in cells)
        ]
        if keep is None and [key for key, _ in shown] == [key for key, _ in self._shown]:
            columns = list(self.columns)
            for (key, cells), (_, before) in zip(shown, self._shown, strict=True):
                for column, cell, old in zip(columns, cells, before, strict=True):
                    if cell != old:
                        self.update_cell(key, column, cell, update_width=True)
            self._shown = shown
            return
        wanted = keep if keep is not None else self.current_key
        self._rebuilding = True
        try:
            self.clear()
            for key, cells in shown:
                self.add_row(*cells, key=key)
            self._shown = shown
            if wanted is not None:
                try:
                    self.move_cursor(row=self.get_row_index(wanted), animate=False)
                except RowDoesNotExist:  # the row is gone (pruned or filtered out)
                    self.move_cursor(row=0, animate=False)
        finally:
            self._rebuilding = False
        self._announce()

    def set_rows_cursor(self, key: str) -> None:
        """Put the cursor on the row with `key`, if shown."""
        try:
            self.move_cursor(row=self.get_row_index(key), animate=False)
        except RowDoesNotExist:  # not shown (filtered out): leave the cursor
            return
        self._announce()

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=max(0, self.row_count - 1))

    def watch_cursor_coordinate(self, old: object, new: object) -> None:
        super().watch_cursor_coordinate(old, new)  # type: ignore[arg-type]
        if not self._rebuilding:  # mid-rebuild the cursor passes through rows it won't stay on
            self._announce()

    def _announce(self) -> None:
        key = self.current_key
        if key != self._last_key:
            self._last_key = key
            self.post_message(self.Chosen(self, key))


class ReposTable(NavTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"nav--muted", "nav--bad", "nav--active"}
    COLUMNS = (("Repository", False), ("", False))

    def show(self, repos: Sequence[tuple[str, Sequence[EnvironmentSummary]]]) -> None:
        rows = []
        for name, summaries in repos:
            failing = sum(s.last_status is Status.FAILED for s in summaries)
            active = sum(s.active for s in summaries)
            badge = Text()
            if active:
                badge.append(f"●{active}", self.style_of("nav--active"))
            if failing:
                badge.append(f" ✗{failing}", self.style_of("nav--bad"))
            rows.append((name, [Text(plain(name), no_wrap=True), badge]))
        self.set_rows(rows)


STATUS_CLASSES = {f"status--{status.value}" for status in Status} | {"nav--muted"}


def environment_key(repo: str, environment: str) -> str:
    """Row key of an environment: unique across repos, so moving to another repo's environment
    of the same name ("production") is a change of row like any other."""
    return f"{repo}/{environment}"


def environment_of(key: str | None) -> str | None:
    return key.rsplit("/", 1)[1] if key else None


class EnvironmentsTable(NavTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = STATUS_CLASSES

    COLUMNS = (
        ("Environment", False),
        ("Live", False),
        ("Last", False),
        ("Recent", True),
        ("OK", False),
    )
    COMPACT_BELOW = 60

    def show(self, summaries: Sequence[EnvironmentSummary]) -> None:
        rows = []
        for summary in summaries:
            status = summary.last_status
            last = (
                Text(
                    f"{STATUS_GLYPHS[status]} {status.value}",
                    self.style_of(f"status--{status.value}"),
                )
                if status
                else Text("no deploys", self.style_of("nav--muted"))
            )
            live = Text(summary.live_sha[:7] if summary.live_sha else "—")
            rate = Text(f"{summary.success_rate:.0%}" if summary.success_rate is not None else "—")
            rows.append(
                (
                    environment_key(summary.repo, summary.environment),
                    [
                        Text(plain(summary.environment)),
                        live,
                        last,
                        Text(sparkline(summary.durations)),
                        rate,
                    ],
                )
            )
        self.set_rows(rows)


WHEN, TOOK = 5, 6  # the deploys' columns that change with the clock


class DeploysTable(NavTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = STATUS_CLASSES

    def __init__(self, *, now: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(id=id)
        self._now = now
        self._records: Sequence[DeployRecord] = ()

    COLUMNS = (
        ("Status", False),
        ("SHA", False),
        ("Message", False),
        ("Trigger", True),
        ("Actor", True),
        ("When", False),
        ("Took", True),
        ("", True),
    )
    COMPACT_BELOW = 110

    def show(self, records: Sequence[DeployRecord]) -> None:
        self._records = records
        self.set_rows([(r.id, self._cells(r)) for r in records])

    def tick(self) -> None:
        """The clock moved: cells that show ages or running times get their new text (only
        those whose text changed are updated; nothing in the table animates). Only those two
        columns are recomputed: the others (a record's title walks its events) cannot change."""
        if not self._records:
            return
        rows = []
        for record, (key, cells) in zip(self._records, self._rows, strict=True):
            now = list(cells)
            now[WHEN], now[TOOK] = self._when(record), Text(self._took(record))
            rows.append((key, now))
        self.set_rows(rows)

    def _when(self, record: DeployRecord) -> Text:
        return Text(format_age(self._now() - record.deploy.created_at), no_wrap=True)

    def _took(self, record: DeployRecord) -> str:
        duration = record.duration
        if duration:
            return format_duration(duration[0])
        started = record.started_at
        if record.status.is_active and started is not None:
            return format_duration(max(self._now() - started, timedelta(0)))  # so far
        return "—"

    def _cells(self, record: DeployRecord) -> list[Text]:
        status = record.status
        glyph = STATUS_GLYPHS[status]
        deploy = record.deploy
        note = Text()
        if deploy.rollback_of:
            note.append(
                f"rollback of {self._short_sha_of(deploy.rollback_of)}", self.style_of("nav--muted")
            )
        if record.cancel_requested and status is not Status.CANCELLED:
            note.append(" cancel requested", self.style_of("status--cancelling"))
        return [
            Text(f"{glyph} {status.value}", self.style_of(f"status--{status.value}"), no_wrap=True),
            Text(deploy.short_sha),
            Text(clip(record.title or "", self._message_width()), no_wrap=True),
            Text(deploy.triggered_by.value),
            Text(clip(deploy.actor, 16), no_wrap=True),
            self._when(record),
            Text(self._took(record)),
            note,
        ]

    def _message_width(self) -> int:
        """What is left for the commit message once the other columns have their room."""
        others = 40 if self._compact else 84
        return max(16, min(72, self.size.width - others))

    def _short_sha_of(self, deploy_id: str) -> str:
        for record in self._records:
            if record.id == deploy_id:
                return record.deploy.short_sha
        return deploy_id[:7]
