"""Parse the plain-text log of a GitHub Actions job.

Format (what GitHub serves for a job's logs): an optional UTF-8 BOM, then lines `YYYY-MM-DDTHH:MM:SS.fffffffZ text`
(7 fractional digits). The runner writes `##[group]title` / `##[endgroup]` folds and `##[error]`,
`##[warning]`, `##[notice]`, `##[debug]`, `##[command]` markers. Lines without a timestamp occur;
they continue the previous entry. Text stays raw data here (ANSI colours included): making it safe
to display is the TUI's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

BOM = "\ufeff"
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z ?", re.ASCII)
_MARKER = re.compile(r"##\[(group|endgroup|error|warning|notice|debug|command)\]")


class LineKind(StrEnum):
    TEXT = "text"
    GROUP = "group"  # opens a fold; message = its title
    ENDGROUP = "endgroup"
    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"
    DEBUG = "debug"
    COMMAND = "command"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line: `text` is everything after the timestamp, marker included."""

    number: int  # 1-based line number in the log
    timestamp: datetime | None  # inherited from the previous line for continuation lines
    text: str
    kind: LineKind = LineKind.TEXT
    group: int | None = None  # index into JobLog.groups of the enclosing fold
    continued: bool = False  # the line had no timestamp of its own

    @property
    def message(self) -> str:
        """The text without its `##[marker]` prefix."""
        if self.kind is LineKind.TEXT:
            return self.text
        return self.text[len(self.kind.value) + 4 :]


@dataclass(frozen=True, slots=True)
class LogGroup:
    """A fold: lines `start`..`end` (0-based indices into JobLog.lines, inclusive)."""

    index: int
    title: str
    start: int
    end: int

    @property
    def is_step_header(self) -> bool:
        """`##[group]Run …` opens each step's log with the command it runs."""
        return self.title.startswith("Run ")


@dataclass(frozen=True, slots=True)
class JobLog:
    lines: tuple[LogLine, ...]
    groups: tuple[LogGroup, ...]
    truncated: bool = False  # the head was dropped because the log was over the size limit

    @property
    def errors(self) -> tuple[LogLine, ...]:
        return tuple(line for line in self.lines if line.kind is LineKind.ERROR)

    @property
    def warnings(self) -> tuple[LogLine, ...]:
        return tuple(line for line in self.lines if line.kind is LineKind.WARNING)


def parse_timestamp(text: str) -> tuple[datetime | None, str]:
    """Split a leading log timestamp off `text`: (UTC time or None, the rest)."""
    match = _STAMP.match(text)
    if match is None:
        return None, text
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:  # 2025-13-45…: not a timestamp, just text that looks like one
        return None, text
    return moment, text[match.end() :]


def classify(text: str) -> LineKind:
    match = _MARKER.match(text)
    return LineKind(match.group(1)) if match else LineKind.TEXT


def parse_job_log(text: str, *, truncated: bool = False) -> JobLog:
    """Parse a whole job log (BOM stripped, CRLF tolerated)."""
    return parse_lines(text.removeprefix(BOM).splitlines(), truncated=truncated)


def parse_lines(raw_lines: Iterable[str], *, truncated: bool = False) -> JobLog:
    lines: list[LogLine] = []
    groups: list[LogGroup] = []
    open_group: tuple[int, str, int] | None = None  # (index, title, start)
    last_stamp: datetime | None = None

    def close(end: int) -> None:
        nonlocal open_group
        if open_group is not None:
            index, title, start = open_group
            groups.append(LogGroup(index, title, start, end))
            open_group = None

    for position, raw in enumerate(raw_lines):
        stamp, rest = parse_timestamp(raw.removeprefix(BOM) if position == 0 else raw)
        continued = stamp is None
        if stamp is None:
            stamp = last_stamp
        last_stamp = stamp
        kind = classify(rest)
        if kind is LineKind.GROUP:
            close(position - 1)  # the runner never nests folds: a new one ends the last
            open_group = (len(groups), rest[len("##[group]") :], position)
        group = open_group[0] if open_group is not None else None
        lines.append(LogLine(position + 1, stamp, rest, kind, group, continued))
        if kind is LineKind.ENDGROUP:
            close(position)
    close(len(lines) - 1)
    return JobLog(tuple(lines), tuple(groups), truncated)
