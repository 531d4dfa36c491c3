"""The per-deploy log spool: round trips, the index, crash leftovers, search."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

import pytest

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.store.spool import (
    LogRecord,
    SpoolReader,
    SpoolWriter,
    delete_spool,
    index_path,
    spool_path,
)

T0 = datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
DEPLOY = "0123456789ab"


def records(
    count: int, *, start: int = 0, host: str = "vm1", source: str = "app"
) -> list[LogRecord]:
    return [
        LogRecord(T0 + timedelta(milliseconds=i), host, source, f"line {i}")
        for i in range(start, start + count)
    ]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return spool_path(tmp_path, DEPLOY)


def write(path: Path, recs: list[LogRecord]) -> None:
    with SpoolWriter(path) as writer:
        assert writer.append_many(recs) == len(recs)


def test_round_trip_keeps_every_field_including_awkward_text(log: Path) -> None:
    awkward = [
        "tab\there",
        "new\nline",
        "carriage\rreturn",
        "back\\slash and a literal \\n",
        "ünïcödé ✓ 日本",
        "",
        "\x1b]52;c;aGk=\x07 [/] [@click=app.quit]x",
        "trailing backslash \\",
    ]
    recs = [
        LogRecord(T0 + timedelta(seconds=i), "h\tost", "src\n", text)
        for i, text in enumerate(awkward)
    ]
    write(log, recs)
    with SpoolReader(log) as reader:
        assert len(reader) == len(recs)
        assert reader.lines(0, len(recs)) == recs
        assert [reader.line(i) for i in range(len(recs))] == recs
    # one record per line on disk, whatever the text held
    assert log.read_bytes().count(b"\n") == len(recs)


def test_format_is_documented_text_with_utc_microsecond_stamps(log: Path) -> None:
    paris = timezone(timedelta(hours=2))
    write(
        log,
        [LogRecord(datetime(2026, 5, 1, 12, 0, 0, 5, tzinfo=paris), "vm1", "kamal-proxy", "a\tb")],
    )
    assert log.read_text() == "2026-05-01T10:00:00.000005Z\tvm1\tkamal-proxy\ta\\tb\n"


def documented_line(record: LogRecord) -> bytes:
    """The format as logs.py documents it, spelled out the slow and obvious way."""

    def escaped(value: str) -> str:
        return "".join(
            {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, c) for c in value
        )

    at = record.at.astimezone(UTC)
    stamp = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond:06d}Z".rjust(27, "0")
    fields = (stamp, escaped(record.host), escaped(record.source), escaped(record.text))
    return ("\t".join(fields) + "\n").encode("utf-8", "replace")


def test_batches_of_every_shape_are_written_exactly_as_documented(log: Path) -> None:
    tokyo = timezone(timedelta(hours=9))
    shared = T0 + timedelta(seconds=5)  # one read's arrival time, shared by its lines
    odd = {1500: "ünïcödé", 2100: "tab\there"}
    batches = [
        records(3),
        [  # one stream, ASCII, crossing second boundaries, microsecond 0, a shared time
            LogRecord(datetime(2026, 5, 1, 23, 59, 59, 999_999, tzinfo=UTC), "vm1", "app", "a"),
            LogRecord(datetime(2026, 5, 2, tzinfo=UTC), "vm1", "app", "b"),
            LogRecord(shared, "vm1", "app", "c"),
            LogRecord(shared, "vm1", "app", "d"),
            LogRecord(datetime(2026, 5, 2, 8, 0, 1, 7, tzinfo=tokyo), "vm1", "app", "e"),
        ],
        [  # mixed hosts and sources, escapes everywhere, non-ASCII, a lone surrogate
            LogRecord(T0, "h\tost", "src\n", "tab\there\\ and \r"),
            LogRecord(T0, "vm2", "agent", "ünïcödé ✓ 日本"),
            LogRecord(T0, "vm1", "app", "lone \udcff surrogate"),
            LogRecord(T0, "h\tost", "src\n", ""),
        ],
        [LogRecord(T0, "h\\ost\r", "s\trc", f"one awkward stream {i}") for i in range(2)],
        [  # big enough to be encoded in pieces, one of them not ASCII, another with a tab
            LogRecord(T0 + timedelta(microseconds=i), "vm1", "app", odd.get(i, f"line {i}"))
            for i in range(2500)
        ],
        [  # far from now: before the epoch, a three-digit year, the last microsecond
            LogRecord(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), "vm1", "app", "x"),
            LogRecord(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "vm1", "app", "y"),
            LogRecord(datetime.max.replace(tzinfo=UTC), "vm1", "app", "z"),
        ],
    ]
    with SpoolWriter(log) as writer:
        for batch in batches:
            assert writer.append_many(iter(batch)) == len(batch)  # any iterable will do
        assert writer.append_many([]) == 0
    expected = [documented_line(record) for batch in batches for record in batch]
    assert log.read_bytes() == b"".join(expected)
    starts = list(accumulate(map(len, expected[:-1]), initial=0))
    data = index_path(log).read_bytes()
    assert [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)] == starts


def test_naive_times_are_refused(log: Path) -> None:
    with SpoolWriter(log) as writer, pytest.raises(ValidationError):
        writer.append(LogRecord(datetime(2026, 5, 1), "vm1", "app", "x"))


def test_index_holds_one_offset_per_line(log: Path) -> None:
    write(log, records(1000))
    data = index_path(log).read_bytes()
    assert len(data) == 8 * 1000
    offsets = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]
    raw = log.read_bytes()
    assert offsets[0] == 0
    assert all(raw[offset - 1 : offset] == b"\n" for offset in offsets[1:])


def test_lines_clamps_like_slicing_and_line_checks_bounds(log: Path) -> None:
    write(log, records(10))
    with SpoolReader(log) as reader:
        assert [r.text for r in reader.lines(8, 50)] == ["line 8", "line 9"]
        assert reader.lines(5, 5) == []
        assert reader.line(-1).text == "line 9"
        with pytest.raises(IndexError):
            reader.line(10)


def test_refresh_tails_a_growing_log(log: Path) -> None:
    with SpoolWriter(log) as writer:
        writer.append_many(records(3))
        with SpoolReader(log) as reader:
            assert len(reader) == 3
            writer.append_many(records(4, start=3))
            assert reader.refresh() == 4
            assert reader.refresh() == 0
            assert [r.text for r in reader.lines(0, 7)] == [f"line {i}" for i in range(7)]


def test_torn_last_line_is_invisible_then_cut_by_the_next_writer(log: Path) -> None:
    write(log, records(5))
    with log.open("ab") as handle:  # a crash in the middle of a write
        handle.write(b"2026-05-01T10:00:09.000000Z\tvm1\tapp\thalf a li")
    with SpoolReader(log) as reader:
        assert len(reader) == 5
        assert reader.line(4).text == "line 4"
        write(log, records(1, start=5))  # reopening repairs, then appends
        assert reader.refresh() == 1
        assert [r.text for r in reader.lines(0, 6)] == [f"line {i}" for i in range(6)]
    assert b"half a li" not in log.read_bytes()


def test_index_pointing_past_the_end_is_rebuilt_never_misread(log: Path) -> None:
    write(log, records(10))
    raw = log.read_bytes()
    cut = raw.index(b"line 5")  # lose the tail of the log but keep the full index
    cut = raw.rindex(b"\n", 0, cut) + 1
    log.write_bytes(raw[:cut])
    with SpoolReader(log) as reader:
        assert [r.text for r in reader.lines(0, 100)] == [f"line {i}" for i in range(5)]


@pytest.mark.parametrize("damage", ["missing", "short", "garbage", "torn entry"])
def test_missing_or_stale_index_is_rebuilt_from_the_log(log: Path, damage: str) -> None:
    write(log, records(50))
    idx = index_path(log)
    data = idx.read_bytes()
    if damage == "missing":
        idx.unlink()
    elif damage == "short":
        idx.write_bytes(data[: 8 * 7])
    elif damage == "garbage":
        idx.write_bytes(os.urandom(len(data)))
    else:
        idx.write_bytes(data + b"\x01\x02\x03")
    with SpoolReader(log) as reader:
        assert len(reader) == 50
        assert [r.text for r in reader] == [f"line {i}" for i in range(50)]
    write(log, records(1, start=50))  # the writer rewrites a good index on open
    assert len(idx.read_bytes()) == 8 * 51


def test_two_writers_interleaving_batches_keep_the_index_exact(log: Path) -> None:
    with SpoolWriter(log) as first, SpoolWriter(log) as second:
        for batch in range(20):
            first.append_many(records(7, start=batch * 100, host="vm1"))
            second.append_many(records(5, start=batch * 100 + 50, host="vm2"))
    indexed = SpoolReader(log)
    index_path(log).unlink()
    rebuilt = SpoolReader(log)
    assert len(indexed) == len(rebuilt) == 20 * 12
    assert indexed.lines(0, 240) == rebuilt.lines(0, 240)
    indexed.close()
    rebuilt.close()


def test_a_megabyte_line_round_trips(log: Path) -> None:
    big = "x" * (1 << 20)
    write(log, [*records(1), LogRecord(T0, "vm1", "app", big), *records(1, start=1)])
    with SpoolReader(log) as reader:
        assert len(reader) == 3
        assert reader.line(1).text == big
        assert reader.line(2).text == "line 1"
        assert reader.search("line 1", 0) == 2


def test_invalid_utf8_on_disk_and_lone_surrogates_do_not_break_reading(log: Path) -> None:
    write(log, [LogRecord(T0, "vm1", "app", "lone \udcff surrogate"), *records(1)])
    with log.open("ab") as handle:
        handle.write(b"2026-05-01T10:00:00.000000Z\tvm1\tapp\tbad \xff\xfe bytes\n")
    with SpoolReader(log) as reader:
        assert len(reader) == 3
        assert reader.line(0).text == "lone ? surrogate"
        assert reader.line(2).text == "bad \ufffd\ufffd bytes"


def test_damaged_line_still_reads_as_a_record(log: Path) -> None:
    log.parent.mkdir(parents=True)
    log.write_bytes(b"not a spool line\nnot-a-time\tvm1\tapp\ttext\n")
    with SpoolReader(log) as reader:
        assert reader.line(0).text == "not a spool line"
        assert reader.line(1).text == "text"
        assert reader.line(1).at.tzinfo is not None


def test_search_forward_backward_smart_case_and_text_only(log: Path) -> None:
    texts = ["Started", "error: disk full", "ok", "ERROR: again", "tab\there", "done"]
    write(log, [LogRecord(T0, "error-host", "app", text) for text in texts])
    with SpoolReader(log) as reader:
        assert reader.search("error", 0) == 1  # lower case: case-insensitive
        assert reader.search("error", 2) == 3
        assert reader.search("ERROR", 0) == 3  # upper case given: case-sensitive
        assert reader.search("error", 5, direction=-1) == 3
        assert reader.search("error", 2, direction=-1) == 1
        assert reader.search("tab\there", 0) == 4  # escaped characters still match
        assert reader.search(re.compile(r"d\w+ full$"), 0) == 1
        assert reader.search(re.compile(r"^d"), 0) == 5  # anchored on the text, not the line
        assert reader.search("host", 0) is None  # the host column is not searched
        assert reader.search("2026", 0) is None  # nor the time
        assert reader.search("nothing", 0) is None
        assert reader.search("ok", 99) is None


def test_search_crosses_block_boundaries(log: Path) -> None:
    write(log, records(10_000))
    with SpoolReader(log) as reader:
        assert reader.search("line 9999", 0) == 9999
        assert reader.search("line 3", 9999, direction=-1) == 3999
        assert reader.search("line 0", 9999, direction=-1) == 0


def test_search_runs_in_a_thread_while_the_log_grows(log: Path) -> None:
    with SpoolWriter(log) as writer:
        writer.append_many(records(20_000))
        with SpoolReader(log) as reader:
            found: list[int | None] = []
            worker = threading.Thread(target=lambda: found.append(reader.search("line 19999", 0)))
            worker.start()
            writer.append_many(records(100, start=20_000))
            worker.join(10)
            reader.refresh()
            assert found == [19999]
            assert len(reader) == 20_100


def test_delete_spool_and_path_validation(tmp_path: Path) -> None:
    path = spool_path(tmp_path, DEPLOY)
    assert path == tmp_path / "logs" / f"{DEPLOY}.log"
    write(path, records(2))
    assert delete_spool(tmp_path, DEPLOY) is True
    assert not path.exists() and not index_path(path).exists()
    assert delete_spool(tmp_path, DEPLOY) is False
    for bad in ["../../etc/passwd", "", "0123456789AB", "0123456789ab\n"]:
        with pytest.raises(ValidationError):
            spool_path(tmp_path, bad)


def test_reader_sees_a_log_replaced_after_pruning(tmp_path: Path) -> None:
    path = spool_path(tmp_path, DEPLOY)
    write(path, records(5))
    with SpoolReader(path) as reader:
        delete_spool(tmp_path, DEPLOY)
        write(path, records(2, start=100))
        assert reader.refresh() == 2
        assert [r.text for r in reader.lines(0, 10)] == ["line 100", "line 101"]


def test_log_file_is_private(log: Path) -> None:
    write(log, records(1))
    assert log.stat().st_mode & 0o077 == 0


def test_reader_of_a_log_not_written_yet_is_empty_until_it_appears(log: Path) -> None:
    with SpoolReader(log) as reader:
        assert len(reader) == 0
        assert reader.lines(0, 10) == []
        assert reader.search("x", 0) is None
        assert reader.refresh() == 0
        write(log, records(3))
        assert reader.refresh() == 3
        assert reader.line(2).text == "line 2"
