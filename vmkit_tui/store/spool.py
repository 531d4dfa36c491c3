"""Log records and the per-deploy log spool.

Every line of a deploy's logs (GitHub job logs, SSH streams from the VMs) is appended as it
arrives to `<data>/logs/<deploy_id>.log`, so a past deploy's logs can be reopened and a viewer
reads only the lines it shows, never the whole log.

File format (UTF-8 text, one record per line, fields separated by a single tab)::

    <at>\t<host>\t<source>\t<text>\n

- `at`: UTC, ISO-8601 with microseconds and a `Z` (`2026-05-01T10:00:00.123456Z`, 27 chars).
- `host`, `source`, `text`: escaped so a record is always exactly one line: backslash → `\\\\`,
  newline → `\\n`, carriage return → `\\r`, tab → `\\t`. Nothing else is changed (remote text
  stays data; sanitising for the terminal is the viewer's job).

Index (`<deploy_id>.idx`, next to the log): the byte offset at which each complete line starts,
as little-endian unsigned 64-bit integers. The writer appends offsets after the lines they
point to, so after a crash the index can only lag behind the log; the reader checks the index
against the log and rescans whatever the index does not cover (a missing, short or stale index
costs a scan, never a wrong line). A last line without its newline (a write torn by a crash)
is invisible to readers and cut off by the next writer that opens the file.

Concurrency: writers take an exclusive `flock` on the log for each batch, so two processes
following the same deploy never interleave half batches or mis-order the index.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate, chain, repeat
from operator import add, itemgetter
from pathlib import Path
from typing import NamedTuple, Self

from vmkit_tui.domain.models import DEPLOY_ID_PATTERN, ValidationError

__all__ = [
    "LogRecord",
    "SpoolReader",
    "SpoolWriter",
    "delete_spool",
    "index_path",
    "spool_path",
]

_CHUNK = 1 << 20  # bytes read per scan / search step
_SEARCH_BLOCK = 4096  # lines read per search step
_OFFSET_SIZE = 8
_LITTLE_ENDIAN = sys.byteorder == "little"
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_STAMP_LENGTH = 27  # len("2026-05-01T10:00:00.123456Z")
_THREE_DIGITS = [f"{number:03d}" for number in range(1000)]
_ONE_SECOND = timedelta(seconds=1)
_NEVER = datetime.min.replace(tzinfo=UTC)
# Records encoded together. A piece's strings stay small enough for malloc to reuse their
# memory; one string per whole batch (megabytes) would be fresh pages, page-faulted in, at
# every batch. Columns come out by itemgetter: zip(*records) makes an iterator per record,
# enough allocations to set off the garbage collector several times per batch.
_PIECE = 1024
_FIELDS = [itemgetter(index) for index in range(4)]


class LogRecord(NamedTuple):
    """One log line: when it happened (UTC), on which host, from which source, and its text."""

    at: datetime
    host: str
    source: str
    text: str


def spool_path(data_dir: Path, deploy_id: str) -> Path:
    """`<data>/logs/<deploy_id>.log`; the id is validated because it becomes a file name."""
    if not isinstance(deploy_id, str) or not DEPLOY_ID_PATTERN.fullmatch(deploy_id):
        raise ValidationError(f"invalid deploy id: {deploy_id!r:.40}")
    return Path(data_dir) / "logs" / f"{deploy_id}.log"


def index_path(log_path: Path) -> Path:
    return log_path.with_suffix(".idx")


def delete_spool(data_dir: Path, deploy_id: str) -> bool:
    """Remove a deploy's log and index (pruning). Returns whether a log existed."""
    log = spool_path(data_dir, deploy_id)
    index_path(log).unlink(missing_ok=True)
    try:
        log.unlink()
    except FileNotFoundError:
        return False
    return True


def _needs_escape(value: str) -> bool:
    # Four substring tests (memchr speed) beat one regex scan several times over.
    return "\\" in value or "\t" in value or "\n" in value or "\r" in value


def _escape(value: str) -> str:
    if not _needs_escape(value):
        return value
    # Backslashes first, so the ones the other replacements add are not doubled.
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), value)


def _as_utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError("naive datetime in a log record: every time in vmkit-tui is UTC")
    return at.astimezone(UTC)


def _second_of(at: datetime) -> tuple[datetime, datetime, str]:
    """The UTC second holding `at` as [start, end) and its stamp up to the decimal point."""
    start = at.replace(microsecond=0)
    try:
        end = start + _ONE_SECOND
    except OverflowError:  # the last second there is: never matched, so always recomputed
        end = start
    return start, end, start.isoformat()[:19] + "."


def _stamps(times: Iterable[datetime]) -> list[str]:
    """Each time as the spool's fixed-width UTC stamp. Only the microseconds are formatted
    per line: consecutive records nearly always share their second (and records of one read
    share their arrival time), and general datetime formatting would dominate a write."""
    stamps: list[str] = []
    append = stamps.append
    digits = _THREE_DIGITS
    last: datetime | None = None
    start = end = _NEVER
    prefix = stamp = ""
    for at in times:
        if at is not last:
            last = at
            if at.tzinfo is not UTC:
                at = _as_utc(at)
            if not start <= at < end:
                start, end, prefix = _second_of(at)
            micro = at.microsecond
            stamp = prefix + digits[micro // 1000] + digits[micro % 1000] + "Z"
        append(stamp)
    return stamps


def _parse_line(line: str) -> LogRecord:
    """Parse one spool line (without its newline). A damaged line still becomes a record."""
    fields = line.split("\t", 3)
    if len(fields) == 4:
        try:
            at = datetime.fromisoformat(fields[0])
        except ValueError:
            at = datetime.min.replace(tzinfo=UTC)
        else:
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
        return LogRecord(at, _unescape(fields[1]), _unescape(fields[2]), _unescape(fields[3]))
    return LogRecord(datetime.min.replace(tzinfo=UTC), "", "", _unescape(line))


def _compile(pattern: str | re.Pattern[str]) -> tuple[re.Pattern[str], bool]:
    """A search's regex (a `str` is a literal, smart case), and whether a block of the file may
    be tried whole first: a literal without escapable characters matches the escaped file text
    exactly when it matches some line's text there."""
    if not isinstance(pattern, str):
        return pattern, False
    flags = 0 if any(c.isupper() for c in pattern) else re.IGNORECASE
    return re.compile(re.escape(pattern), flags), not _needs_escape(pattern)


def _text_field(line: str) -> str:
    fields = line.split("\t", 3)
    return _unescape(fields[3] if len(fields) == 4 else line)


def _separators(hosts: Sequence[str], sources: Sequence[str]) -> Sequence[str]:
    """Each record's `\\t<host>\\t<source>\\t`, escaped once per distinct pair (a batch
    usually comes from one stream)."""
    count = len(hosts)
    if hosts.count(hosts[0]) == count and sources.count(sources[0]) == count:
        return [f"\t{_escape(hosts[0])}\t{_escape(sources[0])}\t"] * count
    escaped: dict[tuple[str, str], str] = {}
    for pair in zip(hosts, sources, strict=True):
        if pair not in escaped:
            escaped[pair] = f"\t{_escape(pair[0])}\t{_escape(pair[1])}\t"
    return list(map(escaped.__getitem__, zip(hosts, sources, strict=True)))


def _encode(records: Iterable[LogRecord]) -> tuple[list[bytes], list[int]]:
    """All records as spool lines, in pieces of `_PIECE` records (written one after the other
    under the batch's lock), and each line's length in bytes."""
    records = records if isinstance(records, list) else list(records)
    pieces: list[bytes] = []
    lengths: list[int] = []
    for first in range(0, len(records), _PIECE):
        piece, piece_lengths = _encode_piece(records[first : first + _PIECE])
        pieces.append(piece)
        lengths += piece_lengths
    return pieces, lengths


def _encode_piece(records: list[LogRecord]) -> tuple[bytes, list[int]]:
    """Some records as spool lines in one blob, and each line's length in bytes. Works on
    columns rather than records: one scan of all texts for characters to escape, host and
    source escaped once, and byte lengths taken from the str lengths when the piece is ASCII
    (else from the encoded blob)."""
    times, hosts, sources, texts = (list(map(field, records)) for field in _FIELDS)
    if _needs_escape("".join(texts)):
        texts = list(map(_escape, texts))
    separators = _separators(hosts, sources)
    text = "".join(chain.from_iterable(zip(_stamps(times), separators, texts, repeat("\n"))))
    blob = text.encode("utf-8", "replace")
    if text.isascii():
        fixed = _STAMP_LENGTH + 1  # the stamp and the newline
        lengths = list(map(add, map(len, separators), map(fixed.__add__, map(len, texts))))
    else:  # lengths in UTF-8 (lone surrogates shrink to "?"): split what will be written
        lengths = [len(line) + 1 for line in blob.split(b"\n")]
        lengths.pop()  # the empty remainder after the last newline
    return blob, lengths


def _line_starts(lengths: list[int], base: int) -> array[int]:
    """Start offsets of lines of these lengths written from file offset `base` on."""
    starts = array("Q", accumulate(lengths, initial=base))
    starts.pop()  # the end of the last line, not a start
    return starts


def _to_disk(offsets: array[int]) -> bytes:
    if _LITTLE_ENDIAN:
        return offsets.tobytes()
    swapped = array("Q", offsets)
    swapped.byteswap()
    return swapped.tobytes()


def _from_disk(data: bytes) -> array[int]:
    offsets = array("Q")
    offsets.frombytes(data[: len(data) - len(data) % _OFFSET_SIZE])
    if not _LITTLE_ENDIAN:
        offsets.byteswap()
    return offsets


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _scan_lines(fd: int, pos: int, starts: array[int]) -> int:
    """Append the start of every complete line from `pos` on; return the end offset of the
    last complete line (where the next line, possibly torn, begins)."""
    line_start = pos
    while True:
        data = os.pread(fd, _CHUNK, pos)
        if not data:
            return line_start
        parts = data.split(b"\n")
        if len(parts) > 1:
            starts.append(line_start)
            following = list(
                accumulate((len(part) + 1 for part in parts[1:-1]), initial=pos + len(parts[0]) + 1)
            )
            line_start = following.pop()
            starts.extend(following)
        pos += len(data)


def _index_is_plausible(fd: int, offsets: array[int], size: int) -> bool:
    """Cheap check that an index belongs to this log: first line at 0, last entry inside the
    file and right after a newline. A wrong index fails this and is rebuilt from the log."""
    if not offsets:
        return True
    last = offsets[-1]
    if offsets[0] != 0 or last >= size:
        return False
    return last == 0 or os.pread(fd, 1, last - 1) == b"\n"


def _load_offsets(fd: int, idx: Path) -> tuple[array[int], int]:
    """The line starts of the log behind `fd` and the end of its last complete line, using the
    index where it is trustworthy and scanning the rest."""
    size = os.fstat(fd).st_size
    try:
        offsets = _from_disk(idx.read_bytes())
    except FileNotFoundError:
        offsets = array("Q")
    if not _index_is_plausible(fd, offsets, size):
        offsets = array("Q")
    # The last indexed line's end is not recorded: rescan from its start.
    scan_from = offsets.pop() if offsets else 0
    end = _scan_lines(fd, scan_from, offsets)
    return offsets, end


class SpoolWriter:
    """Appends records to one deploy's spool. Cheap per batch: one write for the lines, one for
    the index. Opening repairs what a crash may have left (torn last line, short index)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            self._idx_fd = os.open(
                index_path(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError:
            os.close(self._fd)
            raise
        with self._locked():
            self._repair()

    @classmethod
    def for_deploy(cls, data_dir: Path, deploy_id: str) -> SpoolWriter:
        return cls(spool_path(data_dir, deploy_id))

    def _locked(self) -> _Flock:
        return _Flock(self._fd)

    def _repair(self) -> None:
        offsets, end = _load_offsets(self._fd, index_path(self.path))
        if os.fstat(self._fd).st_size > end:
            os.ftruncate(self._fd, end)  # a torn last line was never acknowledged
        data = _to_disk(offsets)
        os.ftruncate(self._idx_fd, 0)
        os.lseek(self._idx_fd, 0, os.SEEK_SET)
        _write_all(self._idx_fd, data)

    def append_many(self, records: Iterable[LogRecord]) -> int:
        """Append records in order; returns how many. Lines go to the log before their offsets
        go to the index, so a crash can only leave the index behind."""
        pieces, lengths = _encode(records)
        if not lengths:
            return 0
        with self._locked():
            base = os.lseek(self._fd, 0, os.SEEK_END)
            starts = _line_starts(lengths, base)
            for piece in pieces:
                _write_all(self._fd, piece)
            os.lseek(self._idx_fd, 0, os.SEEK_END)
            _write_all(self._idx_fd, _to_disk(starts))
        return len(starts)

    def append(self, record: LogRecord) -> None:
        self.append_many((record,))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._idx_fd)
            os.close(self._fd)
            self._fd = self._idx_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Flock:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


class SpoolReader:
    """Random access to a spool's complete lines without loading the log: only the line
    offsets (8 bytes a line) are kept in memory. `refresh()` picks up appended lines.

    Reads use `pread` on the reader's own descriptor, so `search` may run in a worker thread
    while the owner keeps calling `line`/`lines`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = -1  # no log yet: a deploy's pane may open before its first line arrives
        self._starts: array[int] = array("Q")
        self._end = 0
        self._open()

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._starts, self._end = _load_offsets(self._fd, index_path(self.path))
        return True

    def __len__(self) -> int:
        return len(self._starts)

    def refresh(self) -> int:
        """Pick up lines appended since the last look; returns how many are new. A log that
        appeared, or was replaced or truncated (pruned and recreated), is loaded afresh."""
        before = len(self._starts)
        if self._fd < 0:
            return len(self._starts) if self._open() else 0
        try:
            replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return 0
        if replaced or os.fstat(self._fd).st_size < self._end:
            os.close(self._fd)
            self._fd = -1
            return len(self._starts) if self._open() else 0
        self._end = _scan_lines(self._fd, self._end, self._starts)
        return len(self._starts) - before

    def _span(self, start: int, stop: int) -> str:
        """Decoded text of lines [start, stop), newlines included."""
        first = self._starts[start]
        last = self._starts[stop] if stop < len(self._starts) else self._end
        return os.pread(self._fd, last - first, first).decode("utf-8", "replace")

    def line(self, index: int) -> LogRecord:
        count = len(self._starts)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"line {index} out of range (0..{count - 1})")
        return _parse_line(self._span(index, index + 1)[:-1])

    def lines(self, start: int, stop: int) -> list[LogRecord]:
        """Records [start, stop), clamped to what exists (like slicing)."""
        start, stop, _ = slice(start, stop).indices(len(self._starts))
        if start >= stop:
            return []
        text = self._span(start, stop)
        return [_parse_line(line) for line in text.split("\n")[:-1]]

    def __iter__(self) -> Iterator[LogRecord]:
        step = 4096
        for start in range(0, len(self._starts), step):
            yield from self.lines(start, start + step)

    def search(
        self, pattern: str | re.Pattern[str], start: int = 0, direction: int = 1
    ) -> int | None:
        """Index of the first line from `start` (inclusive) in `direction` (+1 down, -1 up)
        whose text matches, or None. A `str` is a literal, case-insensitive unless it contains
        an upper-case letter (smart case); a compiled pattern is used as is. Only the text is
        searched, not the time, host or source."""
        count = len(self._starts)
        if count == 0 or not 0 <= start < count:
            return None
        regex, prefilter = _compile(pattern)
        if direction >= 0:
            for lo in range(start, count, _SEARCH_BLOCK):
                hi = min(lo + _SEARCH_BLOCK, count)
                found = self._search_block(regex, prefilter, lo, hi, reverse=False)
                if found is not None:
                    return found
        else:
            for hi in range(start + 1, 0, -_SEARCH_BLOCK):
                lo = max(hi - _SEARCH_BLOCK, 0)
                found = self._search_block(regex, prefilter, lo, hi, reverse=True)
                if found is not None:
                    return found
        return None

    def find_all(self, pattern: str | re.Pattern[str], start: int = 0, stop: int = -1) -> list[int]:
        """Indexes of the lines in [start, stop) (-1: to the end) whose text matches, as in
        `search`; blocks without a match are skipped whole (about one read of the log)."""
        count = len(self._starts)
        stop = count if stop < 0 else min(stop, count)
        regex, prefilter = _compile(pattern)
        found: list[int] = []
        for lo in range(max(0, start), stop, _SEARCH_BLOCK):
            hi = min(lo + _SEARCH_BLOCK, stop)
            text = self._span(lo, hi)
            if prefilter and regex.search(text) is None:
                continue
            lines = text.split("\n")[:-1]
            found.extend(lo + i for i, line in enumerate(lines) if regex.search(_text_field(line)))
        return found

    def _search_block(
        self, regex: re.Pattern[str], prefilter: bool, lo: int, hi: int, *, reverse: bool
    ) -> int | None:
        text = self._span(lo, hi)
        if prefilter and regex.search(text) is None:
            return None
        lines = text.split("\n")[:-1]
        order = range(len(lines) - 1, -1, -1) if reverse else range(len(lines))
        for offset in order:
            if regex.search(_text_field(lines[offset])):
                return lo + offset
        return None

    def copy(self) -> SpoolReader:
        """A reader of the same lines on a descriptor of its own, for a worker thread: closing
        or refreshing this one (the deploy switched, the log replaced) never pulls the file
        from under the worker's reads. The caller closes it."""
        twin = SpoolReader.__new__(SpoolReader)
        twin.path = self.path
        twin._fd = os.dup(self._fd) if self._fd >= 0 else -1
        twin._starts = array("Q", self._starts)
        twin._end = self._end
        return twin

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
