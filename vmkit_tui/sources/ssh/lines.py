"""Turning a remote command's output bytes into log records.

`_LineSplitter` reads bytes in large chunks and splits them into lines: invalid UTF-8 becomes
U+FFFD (asyncssh's default strict decoding would tear down the whole connection), a last line
without a newline is kept, and a line longer than the cap is cut, saying so. `_LineParser`
gives each line its time (from the line when it carries one) and remembers where a dropped
stream can resume.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson

from vmkit_tui.sources.ssh.commands import TIMESTAMP_PATTERN, ResumePoint, StreamKind
from vmkit_tui.store.spool import LogRecord

_PREFIX_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})) ?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _LineSplitter:
    """Bytes in, decoded lines out; caps line length without ever buffering a long line.
    A line's count of bytes excludes its newline."""

    __slots__ = ("_cap", "_overflow", "_partial")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._partial = b""
        self._overflow = 0  # bytes dropped from the current (overlong) line

    def _cut(self, kept: bytes, total: int) -> str:
        return f"{kept.decode('utf-8', 'replace')} [line truncated: {total} bytes]"

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        if self._overflow:
            newline = chunk.find(b"\n")
            if newline < 0:
                self._overflow += len(chunk)
                return out
            total = len(self._partial) + self._overflow + newline
            out.append(self._cut(self._partial, total))
            self._partial, self._overflow = b"", 0
            chunk = chunk[newline + 1 :]
        data = self._partial + chunk if self._partial else chunk
        end = data.rfind(b"\n")
        tail = data[end + 1 :]
        if end >= 0:
            cap = self._cap
            if end <= cap:  # no complete line can be too long: decode in one go
                lines = data[:end].decode("utf-8", "replace").split("\n")
            else:
                lines = [
                    line.decode("utf-8", "replace")
                    if len(line) <= cap
                    else self._cut(line[:cap], len(line))
                    for line in data[:end].split(b"\n")
                ]
            if b"\r" in data:
                lines = [line.removesuffix("\r") for line in lines]
            out.extend(lines)
        if len(tail) > self._cap:
            self._partial, self._overflow = tail[: self._cap], len(tail) - self._cap
        else:
            self._partial = tail
        return out

    def finish(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        partial, overflow = self._partial, self._overflow
        self._partial, self._overflow = b"", 0
        if overflow:
            return [self._cut(partial, len(partial) + overflow)]
        if partial:
            return [partial.decode("utf-8", "replace").removesuffix("\r")]
        return []


def _json_time(line: str) -> datetime | None:
    """The `time` of a JSON log line (kamal-proxy's slog output)."""
    if not line.startswith("{") or '"time"' not in line:
        return None
    try:
        doc = orjson.loads(line)
        moment = datetime.fromisoformat(doc["time"])
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def _journal_entry(line: str) -> tuple[datetime, str, str] | None:
    """(at, message, cursor) from a `journalctl -o json` line, or None if it is not one."""
    if not line.startswith("{"):
        return None
    try:
        doc = orjson.loads(line)
        cursor = doc["__CURSOR"]
        at = _EPOCH + timedelta(microseconds=int(doc["__REALTIME_TIMESTAMP"]))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, OverflowError):
        return None
    message = doc.get("MESSAGE")
    if isinstance(message, list):  # journald sends non-UTF-8 messages as byte arrays
        try:
            message = bytes(message).decode("utf-8", "replace")
        except (TypeError, ValueError):
            message = ""
    return at, message if isinstance(message, str) else "", str(cursor)


class _LineParser:
    """Turns one stream's lines into records and remembers where to resume: the journal
    cursor, or the last source timestamp and which lines were already seen at it."""

    def __init__(self, kind: StreamKind, host: str, source: str) -> None:
        self.kind = kind
        self.host = host
        self.source = source
        self.cursor: str | None = None
        self.last_at: datetime | None = None
        self.last_raw: str | None = None
        self._seen_at_last: list[str] = []
        self._skip: Counter[str] | None = None  # after a resume: lines to drop as repeats

    def resume_point(self, since: datetime | None) -> ResumePoint:
        if self.cursor is not None:
            return ResumePoint(cursor=self.cursor)
        if self.last_at is not None:
            raw = self.last_raw
            exact = raw if raw is not None and TIMESTAMP_PATTERN.fullmatch(raw) else None
            return ResumePoint(since=self.last_at, timestamp=exact)
        return ResumePoint(since=since)

    def begin_resume(self) -> None:
        """The next lines may repeat what was already delivered (`--since` is inclusive)."""
        if self.cursor is None and self.last_at is not None:
            self._skip = Counter(self._seen_at_last)

    def _is_new(self, at: datetime, raw: str | None, text: str) -> bool:
        """Track the resume point; False if the line repeats one delivered before a drop."""
        last = self.last_at
        if last is not None and at <= last:
            skip = self._skip
            if skip is not None:
                if at < last:
                    return False
                if skip[text] > 0:
                    skip[text] -= 1
                    return False
            if at == last:
                self._seen_at_last.append(text)
            return True
        self._skip = None
        self.last_at, self.last_raw = at, raw
        self._seen_at_last = [text]
        return True

    def parse(self, lines: list[str], arrival: datetime) -> list[LogRecord]:
        """Records for one read's lines. The hot loop of every stream, hence inlined: a
        leading ISO timestamp (docker `--timestamps`, journalctl short-iso) is the record's
        time and is cut from its text; else a JSON `time` (plain streams), else `arrival`."""
        host, source, kind = self.host, self.source, self.kind
        plain, journal = kind is StreamKind.PLAIN, kind is StreamKind.JOURNAL
        match_time, from_iso = _PREFIX_TIME.match, datetime.fromisoformat
        # tuple.__new__ is what LogRecord(...) runs, without a Python-level call per line.
        new, record = tuple.__new__, LogRecord
        records: list[LogRecord] = []
        append = records.append
        for line in lines:
            if journal:
                entry = _journal_entry(line)
                if entry is not None:
                    at, text, self.cursor = entry
                    append(new(record, (at, host, source, text)))
                    continue
            match = match_time(line)
            if match is not None:
                raw = match[1]
                try:
                    stamped = from_iso(raw)
                except ValueError:
                    pass
                else:
                    if stamped.tzinfo is not UTC:
                        stamped = stamped.astimezone(UTC)
                    text = line[match.end() :]
                    if plain or self._is_new(stamped, raw, text):
                        append(new(record, (stamped, host, source, text)))
                    continue
            moment = _json_time(line) if plain else None
            append(new(record, (arrival if moment is None else moment, host, source, line)))
        return records
