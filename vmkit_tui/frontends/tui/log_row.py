"""One spool line as the log view paints it: its time, a source label (naming the job or host
when there is room), the text with the line's own colours (never markup, never an escape
sequence, cut when huge) and its marks (error, group header, the marked row, search matches).
The view passes its styles in; nothing here touches the screen or the spool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from vmkit_tui.domain.text import sanitise, sanitise_sgr
from vmkit_tui.frontends.tui.log_search import SearchState
from vmkit_tui.sources.ssh.vm_log import proxy_summary

MAX_RENDER_CHARS = 2_000  # a 1 MB line is shown cut, with a marker, never laid out whole
LABEL_WIDTH = 11  # the longest source name (kamal-proxy, vmkit-agent)


class LogLine(Protocol):
    @property
    def at(self) -> object: ...
    @property
    def host(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def text(self) -> str: ...


def label(line: LogLine, hosts: dict[str, str], width: int) -> str:
    """The source column: a GitHub line's job, and with several hosts a VM line's host short
    name, when they fit in `width`."""
    source, host = line.source, line.host
    if source == "github":  # the host of a GitHub line is its job: named when there is room
        named = f"github@{host}"
        return named if host and len(named) <= width else source
    if hosts and host:
        named = f"{source}@{hosts.get(host, host)}"
        return named if len(named) <= width else named[: width - 1] + "…"
    return source


def render_row(
    line: LogLine,
    *,
    hosts: dict[str, str],
    label_width: int,
    folded: bool,
    is_match: bool,
    search: SearchState,
    style: Callable[[str], Style],
    console: Console,
) -> Strip:
    """The whole row (uncut: the view cuts it to its width); `style` gives a component
    class's style."""
    meta_style = style("loglines--meta")
    source_style = style(source_class(line.source))
    name = sanitise(label(line, hosts, label_width))  # a GitHub job name is remote text
    raw = line.text
    if line.source == "kamal-proxy":
        raw = proxy_summary(raw)
    group = raw.startswith("##[group]")
    if group:
        raw = ("▸ " if folded else "▾ ") + raw[len("##[group]") :]
    text = Text.from_ansi(sanitise_sgr(raw[:MAX_RENDER_CHARS]), end="", no_wrap=True)
    if len(raw) > MAX_RENDER_CHARS:
        text.append(f" … [{len(raw):,} characters, cut for display]", meta_style)
    if raw.startswith("##[error]") or "level=ERROR" in raw or '"level":"ERROR"' in raw:
        text.stylize(style("loglines--error"))
    elif group:
        text.stylize(style("loglines--group"))
    if is_match:  # marked over the line's own colours, under the match highlight
        cursor = style("loglines--cursor")
        text.stylize(cursor)
        meta_style, source_style = meta_style + cursor, source_style + cursor
    if search.term:
        text.highlight_words(
            [search.term], style("loglines--match"), case_sensitive=search.case_sensitive
        )
    prefix = [
        Segment(f"{clock(line.at)} ", meta_style),
        Segment(f"{name[:label_width]:<{label_width}} ", source_style),
    ]
    return Strip(prefix + list(text.render(console)))


def clock(at: object) -> str:
    strftime = getattr(at, "strftime", None)
    return strftime("%H:%M:%S") if strftime else "--:--:--"


_SOURCE_CLASSES = {
    "github": "loglines--source-github",
    "kamal": "loglines--source-kamal",
    "kamal-proxy": "loglines--source-proxy",
    "vmkit-agent": "loglines--source-agent",
    "app": "loglines--source-app",
}


def source_class(source: str) -> str:
    return _SOURCE_CLASSES.get(source.split(":", 1)[0], "loglines--source-vmkit")
