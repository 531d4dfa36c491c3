"""A Line-API log view over a deploy's spool on disk.

Only the line index lives in memory (in the spool reader); a line is read from disk when it
scrolls into view and its rendered strip is kept in a small LRU cache. New lines are picked up on
a timer at most ~20 times a second however fast they arrive, so a flood of a million lines costs
a handful of refreshes, not a million.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar, Protocol

from rich.segment import Segment
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from vmkit_tui.domain.text import keep_sgr, plain
from vmkit_tui.sources.ssh.vm_log import proxy_summary

MAX_RENDER_CHARS = 2_000  # a 1 MB line is shown cut, with a marker, never laid out whole
STRIP_CACHE_SIZE = 2_000
LABEL_WIDTH = 11  # the longest source name (kamal-proxy, vmkit-agent)
REFRESH_INTERVAL = 0.05  # s: at most 20 refreshes a second while lines pour in


class LogLine(Protocol):
    @property
    def at(self) -> object: ...
    @property
    def host(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def text(self) -> str: ...


class LineSource(Protocol):
    """What the view needs from a spool reader."""

    def __len__(self) -> int: ...

    def line(self, index: int) -> LogLine: ...

    def refresh(self) -> int: ...


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

    follow: reactive[bool] = reactive(True)
    folded = False  # render ##[group] headers as folded sections
    pending: reactive[int] = reactive(0)  # lines that arrived while not following

    class FollowChanged(Message):
        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    class Grew(Message):
        """Rows were added (posted at most once per refresh tick)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogLines.Grew)

    class SearchResult(Message):
        def __init__(self, pattern: str, index: int | None) -> None:
            super().__init__()
            self.pattern = pattern
            self.index = index

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._source: LineSource | None = None
        self._rows: array[int] | None = None  # view row → spool line, when filtered
        self._row_filter: Callable[[LogLine], bool] | None = None
        self._filtered_upto = 0
        self._strips: OrderedDict[tuple[int, int], Strip] = OrderedDict()
        self._dirty = False
        self._shown_rows = 0  # rows laid out at the last tick
        self._width = 0
        self._highlight: str = ""
        self._match_row: int | None = None
        self._hosts: dict[str, str] = {}  # spool host → short name, when there are several
        self._label_width = LABEL_WIDTH

    # --- data ----------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.set_interval(REFRESH_INTERVAL, self._tick)

    def show(self, source: LineSource | None) -> None:
        """Display another spool (or nothing); following its end."""
        self._source = source
        self._shown_rows = 0
        self._rows = None
        self._row_filter = None
        self._filtered_upto = 0
        self._strips.clear()
        self._width = 0
        self._match_row = None
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

    def _label(self, line: LogLine) -> str:
        source, host = line.source, line.host
        if source == "github":  # the host of a GitHub line is its job: named when there is room
            named = f"github@{host}"
            return named if host and len(named) <= self._label_width else source
        if self._hosts and host:
            named = f"{source}@{self._hosts.get(host, host)}"
            return (
                named if len(named) <= self._label_width else named[: self._label_width - 1] + "…"
            )
        return source

    def on_resize(self) -> None:
        self._strips.clear()
        if self.follow:
            self.scroll_end(animate=False)

    def set_filter(self, keep: Callable[[LogLine], bool] | None) -> None:
        """Show only lines `keep` accepts (by source or host); None shows all."""
        self._row_filter = keep
        self._rows = array("L") if keep else None
        self._filtered_upto = 0
        self._shown_rows = 0
        self._strips.clear()
        self._match_row = None
        self._dirty = True
        self._tick()
        self.pending = 0  # a new filter shows what exists; nothing is "new"
        if self.follow:
            self.scroll_end(animate=False)

    def lines_grew(self) -> None:
        """New lines exist on disk; picked up by the next tick (coalesced)."""
        self._dirty = True

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
        from bisect import bisect_left

        return min(bisect_left(self._rows, line_index), max(0, len(self._rows) - 1))

    def _tick(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self._source is not None:
            self._source.refresh()
            self._extend_filter()
        before, after = self._shown_rows, self.row_count
        self._shown_rows = after
        self.virtual_size = Size(max(self._width, self.scrollable_content_region.width), after)
        if after != before:
            if self.follow:
                # After the refresh: the new virtual size must be laid out before it can scroll.
                self.scroll_end(animate=False)
            else:
                self.pending += max(0, after - before)
            self.post_message(self.Grew())
        self.refresh()

    def _extend_filter(self) -> None:
        if self._rows is None or self._source is None or self._row_filter is None:
            return
        total = len(self._source)
        keep = self._row_filter
        rows = self._rows
        for index in range(self._filtered_upto, total):
            if keep(self._source.line(index)):
                rows.append(index)
        self._filtered_upto = total

    # --- follow --------------------------------------------------------------------------------

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.pending = 0
            self.scroll_end(animate=False)
        self.post_message(self.FollowChanged(follow))

    def _user_scrolled(self) -> None:
        """Any upward move stops following, so new lines never yank the view away."""
        if self.follow and self.scroll_y < self.max_scroll_y:
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

    def search(self, pattern: str, forward: bool = True) -> None:
        """Find the next row containing `pattern` from the current match, off the UI thread."""
        self._highlight = pattern
        self._strips.clear()
        self.refresh()
        start = self._match_row if self._match_row is not None else int(self.scroll_y)
        self._search_worker(pattern, start, forward, self.row_count)

    @work(thread=True, exclusive=True, group="log-search", exit_on_error=False)
    def _search_worker(self, pattern: str, start: int, forward: bool, count: int) -> None:
        worker = get_current_worker()
        needle = pattern.casefold()
        if count == 0:
            self.post_message(self.SearchResult(pattern, None))
            return
        step = 1 if forward else -1
        row = start
        for _ in range(count):
            row = (row + step) % count
            if worker.is_cancelled:
                return
            line = self.line_at_row(row)
            if line is not None and needle in plain(line.text).casefold():
                self.post_message(self.SearchResult(pattern, row))
                return
        self.post_message(self.SearchResult(pattern, None))

    # --- rendering -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        line = self.line_at_row(row)
        if line is None:
            return Strip.blank(width, base)
        key = (row, 1 if row == self._match_row else 0)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render_row(line, row == self._match_row)
            self._strips[key] = strip
            if len(self._strips) > STRIP_CACHE_SIZE:
                self._strips.popitem(last=False)
            if strip.cell_length > self._width:
                self._width = strip.cell_length
                self.virtual_size = Size(self._width, self.row_count)
        if row == self._match_row:  # the mark runs the full width
            base += self.get_component_rich_style("loglines--cursor")
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, row)

    def _render_row(self, line: LogLine, is_match: bool) -> Strip:
        meta_style = self.get_component_rich_style("loglines--meta")
        source_style = self.get_component_rich_style(_source_class(line.source))
        label = self._label(line)
        label_width = self._label_width
        stamp = _clock(line.at)
        raw = line.text
        if line.source == "kamal-proxy":
            raw = proxy_summary(raw)
        if raw.startswith("##[group]"):
            raw = ("▸ " if self.folded else "▾ ") + raw[len("##[group]") :]
            group = True
        else:
            group = False
        cut = len(raw) > MAX_RENDER_CHARS
        text = Text.from_ansi(keep_sgr(raw[:MAX_RENDER_CHARS]), end="", no_wrap=True)
        if cut:
            text.append(f" … [{len(raw):,} characters, cut for display]", meta_style)
        if raw.startswith("##[error]") or "level=ERROR" in raw or '"level":"ERROR"' in raw:
            text.stylize(self.get_component_rich_style("loglines--error"))
        elif group:
            text.stylize(self.get_component_rich_style("loglines--group"))
        if self._highlight:
            text.highlight_words(
                [self._highlight],
                self.get_component_rich_style("loglines--match"),
                case_sensitive=False,
            )
        prefix = [
            Segment(f"{stamp} ", meta_style),
            Segment(f"{label[:label_width]:<{label_width}} ", source_style),
        ]
        segments = prefix + list(text.render(self.app.console))
        strip = Strip(segments).apply_style(self.rich_style)
        if is_match:  # over the line's own background, which `apply_style` would keep
            cursor = self.get_component_rich_style("loglines--cursor")
            strip = Strip(Segment.apply_style(strip, post_style=cursor), strip.cell_length)
        return strip


def _clock(at: object) -> str:
    strftime = getattr(at, "strftime", None)
    return strftime("%H:%M:%S") if strftime else "--:--:--"


_SOURCE_CLASSES = {
    "github": "loglines--source-github",
    "kamal": "loglines--source-kamal",
    "kamal-proxy": "loglines--source-proxy",
    "vmkit-agent": "loglines--source-agent",
    "app": "loglines--source-app",
}


def _source_class(source: str) -> str:
    return _SOURCE_CLASSES.get(source.split(":", 1)[0], "loglines--source-vmkit")
