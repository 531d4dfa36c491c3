"""The three navigable lists: repos, environments of a repo, deploys of an environment.

Every cell is a `rich.text.Text` built from sanitised values: a DataTable parses plain strings
as markup, and commit messages or actor names come from outside. Colours come from component
classes styled in `styles/app.tcss`, never from Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import ClassVar, Self

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

from vmkit_tui.domain.deployments import needs_sharing
from vmkit_tui.domain.eligibility import NOT_CHECKED, Eligibility, RollbackEligibility
from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.overview import EnvironmentSummary, sparkline
from vmkit_tui.domain.text import sanitise
from vmkit_tui.frontends.present import format_age, format_duration

STATUS_GLYPHS = {
    Status.PENDING: "○",
    Status.RUNNING: "●",
    Status.CANCELLING: "◌",
    Status.SUCCEEDED: "✓",
    Status.FAILED: "✗",
    Status.CANCELLED: "⊘",
}
# A dispatched rollback's run name ends with its request id ("Roll back production to aafb429
# [<id>]", see tracking/runs.py): how the run is found, not something to read in a list.
_RUN_TAG = re.compile(r" \[[A-Za-z0-9][A-Za-z0-9_.-]{7,63}\]$")


def clip(text: str, width: int) -> str:
    text = sanitise(text)
    return text if len(text) <= width else text[: width - 1] + "…"


class NavTable(DataTable[Text]):
    """A row-cursor table with vim keys, whose rows are keyed by a stable id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("escape", "clear_filter", "Clear the / filter", show=False),
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

    # Columns (label, the table width from which it is shown: 0 always): narrower tables drop
    # the least useful columns first rather than squeezing all of them.
    COLUMNS: ClassVar[tuple[tuple[str, int], ...]] = ()
    FLEX: ClassVar[int | None] = None  # the column cut to what the others' content leaves
    # Updating one row's cells (see _update_row). A class default: DataTable's __init__ refreshes.
    _row_update = False

    def _fit(self, shown: list[tuple[str, list[Text]]]) -> None:
        """Cut the cells of the `FLEX` column (in place) to the room the other columns leave,
        each as wide as its widest cell or label (DataTable pads every cell by 1 each side)."""
        visible = self._shown_columns
        if self.FLEX is None or not visible or not visible[self.FLEX] or not shown:
            return
        labels = [label for (label, _), show in zip(self.COLUMNS, visible, strict=True) if show]
        flex = sum(visible[: self.FLEX])
        used = 1  # the vertical scrollbar
        for index, label in enumerate(labels):
            if index != flex:
                used += 2 + max(len(label), *(cells[index].cell_len for _, cells in shown))
        room = max(12, self.size.width - used - 2)
        for _, cells in shown:
            if cells[flex].cell_len > room:
                cut = cells[flex].copy()
                cut.truncate(room, overflow="ellipsis")
                cells[flex] = cut

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.filter_text = ""
        self._last_key: str | None = None
        self._shown_columns: tuple[bool, ...] | None = None  # None: not laid out yet
        self._rows: Sequence[tuple[str, Sequence[Text]]] = ()
        self._shown: list[tuple[str, list[Text]]] = []  # what the table holds now
        self._rebuilding = False
        self._title = ""
        self._shown_title: str | None = None

    def set_title(self, title: str) -> None:
        """The pane's title; a `/` filter adds itself and what it hides."""
        self._title = title
        self._retitle()

    def _retitle(self) -> None:
        note = ""
        if self.filter_text:
            note = f" · /{sanitise(self.filter_text)} ({len(self._shown)} of {len(self._rows)})"
        title = self._title + note
        if title != self._shown_title:  # setting it repaints the whole table, even unchanged
            self._shown_title = title
            self.border_title = Text(title)  # Text: the typed filter is not markup

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.filter_text)  # else escape goes on to whoever wants it
        return True

    def action_clear_filter(self) -> None:
        self.filter_text = ""
        self.app.refresh_lists()  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        shown = tuple(self.size.width >= from_width for _, from_width in self.COLUMNS)
        if shown != self._shown_columns:
            self._shown_columns = shown
            self.clear(columns=True)
            self._shown = []
            self.add_columns(
                *(label for (label, _), show in zip(self.COLUMNS, shown, strict=True) if show)
            )
        self.set_rows(self._rows)  # the flexible column takes what the others leave

    def _visible(self, cells: Sequence[Text]) -> list[Text]:
        shown = self._shown_columns or ()
        return [cell for cell, show in zip(cells, shown, strict=True) if show]

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
        if self._shown_columns is None:  # not laid out yet: on_resize adds columns and rows
            return
        needle = self.filter_text.casefold()
        shown = [
            (key, self._visible(cells))
            for key, cells in rows
            if not needle or any(needle in cell.plain.casefold() for cell in cells)
        ]
        self._fit(shown)
        if keep is None and [key for key, _ in shown] == [key for key, _ in self._shown]:
            columns = list(self.columns)
            for (key, cells), (_, before) in zip(shown, self._shown, strict=True):
                changed = [
                    (column, cell)
                    for column, cell, old in zip(columns, cells, before, strict=True)
                    if cell != old
                ]
                if changed:
                    self._update_row(key, changed)
            self._shown = shown
            self._retitle()
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
        self._retitle()
        self._announce()

    def _update_row(self, key: str, changed: list[tuple[ColumnKey, Text]]) -> None:
        """New cells for one row, and only that row repainted: `update_cell` repaints the whole
        table, and a repaint after it renders every visible row afresh (DataTable keys its
        render caches by its update count). A column that gets wider changes the table's
        scrollable width, and that repaints everything as it must."""
        self._row_update = True
        try:
            for column, cell in changed:
                self.update_cell(key, column, cell, update_width=True)
        finally:
            self._row_update = False
        self.refresh_row(self.get_row_index(key))
        self.check_idle()  # the column widths are measured when idle (a row off screen: no refresh)

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        if self._row_update and not regions and not layout and not recompose:
            return self  # update_cell's repaint of the whole table: _update_row repaints the row
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

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
    COLUMNS = (("Repository", 0), ("", 0))

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
            rows.append((name, [Text(sanitise(name), no_wrap=True), badge]))
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

    COLUMNS = (("Environment", 0), ("Live", 0), ("Last", 0), ("Recent", 56), ("OK", 0))

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
                        Text(sanitise(summary.environment)),
                        live,
                        last,
                        Text(sparkline(summary.durations)),
                        rate,
                    ],
                )
            )
        self.set_rows(rows)


WHEN, TOOK = 6, 7  # the deploys' columns that change with the clock
BACK = 2  # whether a rollback to the row would work: changes with each eligibility refresh
# Rollback eligibility in a word: kept (container on every host: `kamal rollback`), pull (the
# image is in GHCR), gone (rebuild), ? (not known yet, or cannot be checked).
ELIGIBILITY_WORDS = {
    Eligibility.RETAINED: "kept",
    Eligibility.IN_REGISTRY: "pull",
    Eligibility.GONE: "gone",
    Eligibility.UNKNOWN: "?",
}
ELIGIBILITY_CLASSES = {f"back--{state.value}" for state in Eligibility}


def _not_checked(record: DeployRecord) -> RollbackEligibility:
    return NOT_CHECKED


# A running deploy's time and an age under a minute advance in steps of this many seconds: every
# change of a cell renders its row afresh (NavTable._update_row), and once a second that cost
# about 2 % of a core when each change re-rendered the whole table (a bare 50-row table).
STEP = 5


def _stepped(delta: timedelta) -> timedelta:
    return timedelta(seconds=max(0, int(delta.total_seconds())) // STEP * STEP)


class DeploysTable(NavTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = STATUS_CLASSES | ELIGIBILITY_CLASSES

    def __init__(
        self,
        *,
        now: Callable[[], datetime],
        eligibility: Callable[[DeployRecord], RollbackEligibility] = _not_checked,
        id: str | None = None,
        sharing: bool = False,
    ) -> None:
        super().__init__(id=id)
        self._now = now
        self._eligibility = eligibility
        self._sharing = sharing  # the team history is on: mark what is not on GitHub yet
        self._records: Sequence[DeployRecord] = ()

    COLUMNS = (
        ("Status", 0),
        ("SHA", 0),
        ("Back", 0),
        ("Message", 0),
        ("Trigger", 90),
        ("Actor", 74),
        ("When", 0),
        ("Took", 81),
        ("", 110),
    )
    FLEX = 3

    def show(self, records: Sequence[DeployRecord]) -> None:
        self._records = records
        self.set_rows([(r.id, self._cells(r)) for r in records])

    def eligibility_changed(self) -> None:
        """New eligibility facts: only the cells of the Back column whose word changed are
        updated (no rebuild, nothing animates)."""
        rows = []
        for record, (key, cells) in zip(self._records, self._rows, strict=True):
            now = list(cells)
            now[BACK] = self._back(record)
            rows.append((key, now))
        self.set_rows(rows)

    def _back(self, record: DeployRecord) -> Text:
        state = self._eligibility(record).state
        return Text(ELIGIBILITY_WORDS[state], self.style_of(f"back--{state.value}"))

    def tick(self) -> None:
        """The clock moved: cells that show ages or running times get their new text, and only
        if one of them changed is anything rebuilt (most seconds none has: nothing is touched).
        Only those two columns are recomputed: the others cannot change with the clock."""
        times = [(self._when(record), self._took(record)) for record in self._records]
        if all(
            cells[WHEN].plain == when and cells[TOOK].plain == took
            for (_, cells), (when, took) in zip(self._rows, times, strict=True)
        ):
            return
        rows = []
        for (key, cells), (when, took) in zip(self._rows, times, strict=True):
            now = list(cells)
            now[WHEN], now[TOOK] = Text(when, no_wrap=True), Text(took)
            rows.append((key, now))
        self.set_rows(rows)

    def _when(self, record: DeployRecord) -> str:
        age = self._now() - record.deploy.created_at
        return format_age(_stepped(age) if age < timedelta(minutes=1) else age)

    def _took(self, record: DeployRecord) -> str:
        duration = record.duration
        if duration:
            return format_duration(duration[0])
        started = record.started_at
        if record.status.is_active and started is not None:
            return format_duration(_stepped(self._now() - started))  # so far
        return "—"

    def _cells(self, record: DeployRecord) -> list[Text]:
        status = record.status
        glyph = STATUS_GLYPHS[status]
        deploy = record.deploy
        note = Text()
        title = record.title or ""
        if deploy.rollback_of:
            target = self._short_sha_of(deploy.rollback_of)
            title = _RUN_TAG.sub("", title)
            if target not in title:  # said once: "Roll back production to aafb429" says it
                note.append(f"rollback of {target}", self.style_of("nav--muted"))
        if record.cancel_requested and status is not Status.CANCELLED:
            note.append(" cancel requested", self.style_of("status--cancelling"))
        if self._sharing and needs_sharing(record):
            note.append(" not shared yet", self.style_of("nav--muted"))
        return [
            Text(f"{glyph} {status.value}", self.style_of(f"status--{status.value}"), no_wrap=True),
            Text(deploy.short_sha),
            self._back(record),
            Text(clip(title, 200), no_wrap=True),
            Text(deploy.triggered_by.value),
            Text(clip(deploy.actor, 16), no_wrap=True),
            Text(self._when(record), no_wrap=True),
            Text(self._took(record)),
            note,
        ]

    def _short_sha_of(self, deploy_id: str) -> str:
        for record in self._records:
            if record.id == deploy_id:
                return record.deploy.short_sha
        return deploy_id[:7]
