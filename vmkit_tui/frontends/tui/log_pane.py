"""The log pane: a status line (source filter, follow, +N new), the spool view, a search box."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Input, Static

from vmkit_tui.domain.models import Diagnosis
from vmkit_tui.domain.text import sanitise
from vmkit_tui.frontends.tui.diagnosis import DiagnosisBanner
from vmkit_tui.frontends.tui.log_lines import LineSource, LogLines
from vmkit_tui.frontends.tui.log_row import LogLine

# What `s` cycles through: None shows every source.
SOURCE_FILTERS: tuple[str | None, ...] = (
    None,
    "github",
    "kamal",
    "kamal-proxy",
    "vmkit-agent",
    "app",
)


def view_filter(source: str | None, fold: bool) -> Callable[[LogLine], bool] | None:
    """Which spool lines to show: one source (or all), and with `fold` the lines inside GitHub's
    `##[group]` sections hidden behind their header. Called on lines in order (it keeps the
    group state), so a new filter is made for every change."""
    if source is None and not fold:
        return None
    inside = False

    def keep(line: LogLine) -> bool:
        nonlocal inside
        if fold and line.source == "github":
            if line.text.startswith("##[group]"):
                inside = True
            elif line.text.startswith("##[endgroup]"):
                inside = False
                return False
            elif inside:
                return False
        return source is None or line.source == source or line.source.startswith(source + ":")

    return keep


class LogPane(Vertical):
    ALLOW_MAXIMIZE = True  # `z` gives the whole pane (status, lines, search) the screen

    source_filter: reactive[str | None] = reactive(None)
    folded: reactive[bool] = reactive(False)  # GitHub ##[group] sections shown as their headers

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.deploy_id: str | None = None
        self._status = Text()  # the status line as last shown

    def compose(self) -> ComposeResult:
        yield DiagnosisBanner(id="log-diagnosis")
        yield Static(id="log-status", markup=False)
        yield LogLines(id="log-lines")
        yield Input(placeholder="search the log (enter: find, escape: close)", id="log-search")

    @property
    def lines(self) -> LogLines:
        return self.query_one(LogLines)

    @property
    def search_term(self) -> str:
        """The one search of the shown deploy's log (the view owns it; leaving the deploy
        clears it)."""
        return self.lines.search_state.term

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False
        self.query_one("#log-diagnosis").display = False
        for state in ("shown_rows", "pending", "filtered_upto"):
            self.watch(self.lines, state, self._update_status, init=False)
        self._update_status()

    def show_diagnosis(self, diagnosis: Diagnosis | None) -> None:
        """A failed deploy's cause and fix, above its log (`d` jumps to the line)."""
        self.query_one(DiagnosisBanner).show(diagnosis)

    def show(self, deploy_id: str | None, source: LineSource | None) -> None:
        self.deploy_id = deploy_id
        self.lines.show(source)
        self.source_filter = None
        self.folded = False
        self._update_status()

    def cycle_source(self) -> None:
        index = SOURCE_FILTERS.index(self.source_filter)
        self.source_filter = SOURCE_FILTERS[(index + 1) % len(SOURCE_FILTERS)]

    def watch_source_filter(self) -> None:
        self._apply_view()

    def watch_folded(self) -> None:
        self._apply_view()

    def _apply_view(self) -> None:
        self.lines.folded = self.folded
        self.lines.set_filter(view_filter(self.source_filter, self.folded))
        self._update_status()

    def open_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.value = self.search_term
        box.focus()

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        term = event.value.strip()
        self._close_search()
        if term:
            self.lines.start_search(term)
        else:
            self.lines.clear_search()
        self._update_status()

    def key_escape(self) -> None:
        if self.query_one("#log-search", Input).display:
            self._close_search()

    def _close_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = False
        self.lines.focus()

    def search_again(self, forward: bool) -> None:
        self.lines.search_again(forward)

    def jump_to_line(self, line_index: int) -> None:
        """Mark and show one spool line (`d`: the diagnosis's line); any search ends."""
        self.lines.clear_search()
        self.lines.scroll_to_row(self.lines.row_of_line(line_index))
        self._update_status()

    @on(LogLines.SearchResult)
    def _search_result(self, event: LogLines.SearchResult) -> None:
        state = self.lines.search_state
        if state.searched and not state.rows and event.step != "recount":
            self.notify(sanitise(f"not found: {state.term}"), severity="warning", markup=False)
        self._update_status()

    @on(LogLines.FollowChanged)
    def _follow_changed(self) -> None:
        self._update_status()

    def _update_status(self) -> None:
        if not self.is_mounted:
            return
        lines = self.lines
        text = Text()
        text.append("Log", "bold")
        text.append(f" · {self.source_filter or 'all sources'}")
        if self.folded:
            text.append(" · groups folded")
        text.append(f" · {lines.row_count:,} lines")
        if (progress := lines.filter_progress) is not None:
            text.append(f" · filtering {progress:.0%}")
        text.append(" · following" if lines.follow else " · paused")
        if not lines.follow and lines.pending:
            text.append(f" · +{lines.pending:,} new (G to jump)")
        search = lines.search_state
        if search.term:
            text.append(" · /")
            text.append(sanitise(search.term))
            text.append(f" {search.label()}")
        if text == self._status:
            return  # unchanged: no repaint
        self._status = text
        # One line high (styles): no layout pass, which would repaint every pane at each new line
        self.query_one("#log-status", Static).update(text, layout=False)
