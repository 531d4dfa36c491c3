"""A Line-API log view over a deploy's spool on disk.

Only the line index lives in memory (in the spool reader); a line is read from disk when it
scrolls into view and its rendered strip is kept in a small LRU cache. New lines are picked up
at once after a quiet spell, then at most once a second however fast they arrive (a timer set
by the first new line, none while nothing arrives), so a flood of a million lines costs a
handful of refreshes, not a million, and none while help or a dialog covers the view (it
catches up when they close).
A growing log changes only this view's scrollable size: that never needs a screen-wide layout
(the view's own size is set by the panes, not by its content), so none is done; only this view
and its scrollbar are repainted, and only when the rows on screen changed.
Filtering (a source, folded groups) and search walk the spool in a worker thread, on a reader of
their own, so keys keep answering whatever the log's size.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from time import monotonic
from typing import TYPE_CHECKING, ClassVar, Protocol

from textual import work
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from vmkit_tui.frontends.tui.log_row import LABEL_WIDTH, LogLine, render_row
from vmkit_tui.frontends.tui.log_search import SearchState, Step, matching_rows

if TYPE_CHECKING:
    from textual.timer import Timer

STRIP_CACHE_SIZE = 2_000
# s: at most one refresh a second while lines pour in. Following, each refresh repaints every row
# in view, its scrollbar and the status line; at 20 lines/s a screenful is replaced every second
# either way, and what the eye takes from a flood is that it moves and how fast. Measured with
# bench/idle_cpu.py's streaming state: about 1 point of a core less than twice a second.
REFRESH_INTERVAL = 1.0
FIRST_DELAY = 0.05  # s: a line after a quiet spell shows this soon (a burst is taken in whole)
FILTER_INLINE = 2_000  # new lines filtered on the UI thread; more go to the filter worker
FILTER_FIRST = 1_000  # lines in the filter worker's first chunk (the first screenful, soon)
FILTER_CHUNK = 65_536  # lines per chunk after that


class LineSource(Protocol):
    """What the view needs from a spool reader."""

    def __len__(self) -> int: ...

    def line(self, index: int) -> LogLine: ...

    def refresh(self) -> int: ...

    def lines(self, start: int, stop: int) -> Sequence[LogLine]: ...

    def find_all(self, pattern: str, start: int = 0, stop: int = -1) -> list[int]: ...

    def copy(self) -> LineSource: ...

    def close(self) -> None: ...


class LogLines(ScrollView, can_focus=True):
    """Renders only the visible rows of a (possibly filtered) spool."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "loglines--meta",
        "loglines--source-github",
        "loglines--source-kamal",
        "loglines--source-proxy",
        "loglines--source-agent",
        "loglines--source-app",
        "loglines--source-vmkit",
        "loglines--error",
        "loglines--group",
        "loglines--match",
        "loglines--cursor",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
        Binding("g,home", "scroll_home", "Top", show=False),
        Binding("G,end", "scroll_end", "Bottom", show=False),
        Binding("pagedown,space", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
    ]

    # Plain state (no repaint of their own): the log pane watches them for its status line,
    # synchronously, so the status is repainted in the same frame as the rows.
    follow: var[bool] = var(True)
    folded = False  # render ##[group] headers as folded sections
    pending: var[int] = var(0)  # lines that arrived while not following
    shown_rows: var[int] = var(0)  # rows taken in at the last tick
    filtered_upto: var[int] = var(0)  # spool lines the filter looked at

    class FollowChanged(Message):
        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    class Filtered(Message):
        """The filter worker's next rows: spool lines up to `upto` looked at, `rows` kept."""

        def __init__(self, generation: int, upto: int, rows: array[int]) -> None:
            super().__init__()
            self.generation = generation
            self.upto = upto
            self.rows = rows

    class SearchResult(Message):
        """Matches found in spool lines [.., scanned) by a search worker (see log_search)."""

        def __init__(self, generation: int, rows: list[int], scanned: int, step: Step) -> None:
            super().__init__()
            self.generation = generation
            self.rows = rows
            self.scanned = scanned
            self.step = step

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._source: LineSource | None = None
        self._rows: array[int] | None = None  # view row → spool line, when filtered
        self._row_filter: Callable[[LogLine], bool] | None = None
        self._filter_generation = 0  # bumped by every new filter or source: stale chunks drop
        self._filter_total = 0  # the worker filters up to here (0: no worker running)
        self._strips: OrderedDict[tuple[int, bool, int, int], Strip] = OrderedDict()
        self._dirty = False
        self._tick_timer: Timer | None = None
        self._last_tick = 0.0  # monotonic time of the last timer tick
        self._width = 0
        self.search_state = SearchState()
        self._search_generation = 0  # results of an older search (or deploy, or view) are moot
        self._match_row: int | None = None  # the marked row: the current match, or `d`'s line
        self._hosts: dict[str, str] = {}  # spool host → short name, when there are several
        self._label_width = LABEL_WIDTH

    # --- data ----------------------------------------------------------------------------------

    def on_unmount(self) -> None:
        self._stop_filter()
        if self._source is not None:
            self._source.close()
            self._source = None

    def show(self, source: LineSource | None) -> None:
        """Display another spool (or nothing); following its end. The view owns `source` and
        closes it when another is shown, or when the view goes."""
        self._stop_filter()
        if self._source is not None and self._source is not source:
            self._source.close()
        self._source = source
        self.shown_rows = 0
        self._rows = None
        self._row_filter = None
        self.filtered_upto = 0
        self._strips.clear()
        self._width = 0
        self.clear_search()
        self.pending = 0
        self.follow = True
        self._dirty = True
        self._tick()

    def set_hosts(self, hosts: dict[str, str]) -> None:
        """The environment's hosts (spool label → short name): with more than one, every VM
        line says which host it came from, in a label column wide enough for all of them."""
        self._hosts = hosts if len(hosts) > 1 else {}
        longest = max((len(short) for short in self._hosts.values()), default=-1)
        self._label_width = LABEL_WIDTH + 1 + longest
        self._strips.clear()
        self.refresh()

    def on_resize(self) -> None:
        self._strips.clear()
        if self.follow:
            self.scroll_end(animate=False)

    def set_filter(self, keep: Callable[[LogLine], bool] | None) -> None:
        """Show only lines `keep` accepts (by source or host); None shows all. The lines there
        are filtered by a worker, a chunk at a time (a new filter cancels it)."""
        self._stop_filter()
        self._row_filter = keep
        self._rows = array("L") if keep else None
        self.filtered_upto = 0
        self.shown_rows = 0
        self._strips.clear()
        self._match_row = None
        self._dirty = True
        self._tick()
        self.pending = 0  # a new filter shows what exists; nothing is "new"
        if self.follow:
            self.scroll_end(animate=False)
        self._recount_search()

    def on_mount(self) -> None:
        self.app.screen_change_signal.subscribe(self, self._screen_changed)

    def lines_grew(self) -> None:
        """New lines exist on disk; picked up by the next tick (coalesced)."""
        self._dirty = True
        if self._tick_timer is None:
            wait = max(FIRST_DELAY, self._last_tick + REFRESH_INTERVAL - monotonic())
            self._tick_timer = self.set_timer(wait, self._timer_tick)

    def _timer_tick(self) -> None:
        self._tick_timer = None
        self._last_tick = monotonic()
        if self.screen.is_active:  # under help or a dialog: caught up when they close
            self._tick()

    def _screen_changed(self, screen: object) -> None:
        if screen is self.screen and self._dirty:
            self.lines_grew()

    @property
    def filter_progress(self) -> float | None:
        """How far the filter worker got (0..1), or None when it is not running."""
        if not self._filter_total:
            return None
        return self.filtered_upto / self._filter_total

    @property
    def row_count(self) -> int:
        if self._source is None:
            return 0
        return len(self._rows) if self._rows is not None else len(self._source)

    def line_at_row(self, row: int) -> LogLine | None:
        if self._source is None or not 0 <= row < self.row_count:
            return None
        return self._source.line(self._rows[row] if self._rows is not None else row)

    def row_of_line(self, line_index: int) -> int:
        """The view row showing spool line `line_index` (or the nearest one after it)."""
        if self._rows is None:
            return line_index
        return min(bisect_left(self._rows, line_index), max(0, len(self._rows) - 1))

    def _tick(self, new: bool = True) -> None:
        """Take in what changed: new lines (`new`: counted while not following) or rows the
        filter worker found."""
        if not self._dirty:
            return
        self._dirty = False
        if self._source is not None:
            self._source.refresh()
            self._extend_filter()
        before, after = self.shown_rows, self.row_count
        region = self.scrollable_content_region
        if min(before, after) < int(self.scroll_y) + region.height:
            self.refresh()  # rows on screen came, went or changed (a new filter or spool)
        self._set_virtual_size(Size(self._width, after))
        if after != before:
            if self.follow:
                self.scroll_end(animate=False, immediate=True)  # a scroll repaints the view
            elif new:
                self.pending += max(0, after - before)
        self.shown_rows = after

    def _fit_width(self) -> None:
        self._set_virtual_size(Size(self._width, self.shown_rows))

    def _set_virtual_size(self, size: Size) -> None:
        """The scrollable size, without the screen-wide layout that assigning `virtual_size`
        asks for: this view's region does not depend on it. Textual's own path for a size that
        needs no layout (`Widget._size_updated(layout=False)`, `OptionList`): set the reactive
        quietly, then update the scrollbars (a layout follows only if one appears or goes)."""
        if size != self.virtual_size:
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)

    def _extend_filter(self) -> None:
        """Filter the lines not looked at yet: a few here, many in the worker."""
        source, keep, rows = self._source, self._row_filter, self._rows
        if rows is None or source is None or keep is None or self._filter_total:
            return
        start, total = self.filtered_upto, len(source)
        if total - start > FILTER_INLINE:
            self._filter_total = total
            self._filter_worker(source.copy(), keep, start, total, self._filter_generation)
            return
        rows.extend(start + n for n, line in enumerate(source.lines(start, total)) if keep(line))
        self.filtered_upto = total

    def _stop_filter(self) -> None:
        self._filter_generation += 1
        self._filter_total = 0
        self.workers.cancel_group(self, "log-filter")

    @work(thread=True, group="log-filter", exit_on_error=False)
    def _filter_worker(
        self,
        source: LineSource,
        keep: Callable[[LogLine], bool],
        start: int,
        stop: int,
        generation: int,
    ) -> None:
        """Lines [start, stop) through `keep`, in order (it keeps state), a chunk at a time:
        the first one small, so the first screenful shows at once."""
        worker = get_current_worker()
        try:
            size = FILTER_FIRST
            while start < stop and not worker.is_cancelled:
                end = min(start + size, stop)
                kept = array("L")
                kept.extend(
                    start + n for n, line in enumerate(source.lines(start, end)) if keep(line)
                )
                self.post_message(self.Filtered(generation, end, kept))
                start, size = end, FILTER_CHUNK
        finally:
            source.close()

    def on_log_lines_filtered(self, message: Filtered) -> None:
        message.stop()
        if message.generation != self._filter_generation or self._rows is None:
            return  # a chunk of a filter (or a spool) since replaced
        self._rows.extend(message.rows)
        if message.upto >= self._filter_total:
            self._filter_total = 0  # done: lines that came meanwhile are picked up next
        self.filtered_upto = message.upto  # after the total: the status shows the progress
        self._dirty = True
        self._tick(new=False)

    # --- follow --------------------------------------------------------------------------------

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.pending = 0
            self.scroll_end(animate=False)
        self.post_message(self.FollowChanged(follow))

    def _user_scrolled(self) -> None:
        """Any upward move stops following, so new lines never yank the view away. The target,
        not the position: an animated move has not begun yet, and the next refresh would
        otherwise scroll back to the end over it."""
        if self.follow and self.scroll_target_y < self.max_scroll_y:
            self.follow = False

    def action_scroll_up(self) -> None:
        super().action_scroll_up()
        self._user_scrolled()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._user_scrolled()

    def action_scroll_home(self) -> None:
        self.scroll_home(animate=False)
        self._user_scrolled()

    def action_scroll_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False)

    def _on_mouse_scroll_up(self, event: object) -> None:
        self.call_after_refresh(self._user_scrolled)

    def scroll_to_row(self, row: int) -> None:
        self.follow = False
        self._match_row = row
        self.scroll_to(y=max(0, row - self.scrollable_content_region.height // 2), animate=False)
        self._strips.clear()
        self.refresh()

    # --- search --------------------------------------------------------------------------------

    def start_search(self, term: str) -> None:
        """Find every match of `term` and jump to the first at or after the top of the view."""
        self.clear_search()
        self.search_state = SearchState(term)
        self._search("first")

    def search_again(self, forward: bool) -> None:
        """`n` / `N`: the next or previous match, counting lines that arrived since."""
        if self.search_state.term:
            self._search("next" if forward else "previous")

    def clear_search(self) -> None:
        self._search_generation += 1
        self.search_state = SearchState()
        self._match_row = None
        self._strips.clear()
        self.refresh()

    def _recount_search(self) -> None:
        """The rows changed (another source filter, folding): count the matches afresh."""
        term = self.search_state.term
        if term:
            self._search_generation += 1
            self.search_state = SearchState(term)
            self._search("recount")

    def _search(self, step: Step) -> None:
        """Search the lines not searched yet in a worker thread; `step` is applied on the result."""
        self._strips.clear()
        self.refresh()
        state, source = self.search_state, self._source
        filtered = self._rows is not None
        stop = self.filtered_upto if filtered else self.row_count
        if source is None:
            self.post_message(self.SearchResult(self._search_generation, [], 0, step))
            return
        self._search_worker(
            source.copy(),
            self._search_generation,
            state.term,
            state.scanned,
            stop,
            self._rows,
            step,
        )

    @work(thread=True, exclusive=True, group="log-search", exit_on_error=False)
    def _search_worker(
        self,
        source: LineSource,
        generation: int,
        term: str,
        start: int,
        stop: int,
        shown: array[int] | None,
        step: Step,
    ) -> None:
        """On a reader of the worker's own (closed after), so the UI's reader is never shared."""
        try:
            rows = matching_rows(source, term, start, stop, shown)
        finally:
            source.close()
        if not get_current_worker().is_cancelled:
            self.post_message(self.SearchResult(generation, rows, max(start, stop), step))

    def on_log_lines_search_result(self, message: SearchResult) -> None:
        if message.generation != self._search_generation:
            message.stop()  # a result for a search that was replaced since
            return
        state = self.search_state
        state.add(message.rows, message.scanned)
        row = state.move(message.step, int(self.scroll_y))
        self._match_row = row
        if row is not None:
            self.follow = False
            height = self.scrollable_content_region.height
            if not self.scroll_y <= row < self.scroll_y + height:
                self.scroll_to(y=max(0, row - height // 2), animate=False)
        self._strips.clear()
        self.refresh()

    # --- rendering -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """A row as shown: cached cut to the view's width, so a follow that scrolls the rows
        up by a few lines renders only the new ones (the rest are looked up, not read from
        disk, laid out, cut or offset again)."""
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if not 0 <= row < self.row_count:
            return Strip.blank(width, self.rich_style)
        is_match = row == self._match_row
        key = (row, is_match, scroll_x, width)
        strip = self._strips.get(key)
        if strip is None:
            line = self.line_at_row(row)
            assert line is not None  # the row is in range
            whole = self._render_row(line, is_match)
            if whole.cell_length > self._width:
                self._width = whole.cell_length
                # After this frame: a scrollbar that comes would move the rows being rendered
                self.call_later(self._fit_width)
            base = self.rich_style
            if is_match:  # the mark runs the full width
                base += self.get_component_rich_style("loglines--cursor")
            strip = whole.crop_extend(scroll_x, scroll_x + width, base)
            strip = strip.apply_offsets(scroll_x, row)
            self._strips[key] = strip
            if len(self._strips) > STRIP_CACHE_SIZE:
                self._strips.popitem(last=False)
        return strip

    def _render_row(self, line: LogLine, is_match: bool) -> Strip:
        """The whole row in this view's styles (log_row.render_row), before it is cut."""
        row = render_row(
            line,
            hosts=self._hosts,
            label_width=self._label_width,
            folded=self.folded,
            is_match=is_match,
            search=self.search_state,
            style=self.get_component_rich_style,
            console=self.app.console,
        )
        return row.apply_style(self.rich_style)
