"""Pure parts of the SSH client: line splitting, timestamps and resume, the remote guard's
shell semantics (run with the local sh), and the error messages."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from vmkit_tui.sources.ssh import (
    AuthenticationFailed,
    ConnectionDropped,
    ConnectTimeout,
    HostUnreachable,
    SshOptions,
    SshTarget,
)
from vmkit_tui.sources.ssh.commands import StreamKind
from vmkit_tui.sources.ssh.connect import _connect_error
from vmkit_tui.sources.ssh.follow import _gap_marker
from vmkit_tui.sources.ssh.lines import _LineParser, _LineSplitter
from vmkit_tui.sources.ssh.session import _guarded
from vmkit_tui.store.spool import LogRecord

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
ARRIVAL = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def split_all(chunks: list[bytes], cap: int = 64) -> list[str]:
    splitter = _LineSplitter(cap)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.finish()


def test_lines_split_across_chunks_and_multibyte_characters() -> None:
    data = "première ligne\nzweite Zeile ✓\n日本語\n".encode()
    expected = ["première ligne", "zweite Zeile ✓", "日本語"]
    for size in (1, 2, 3, 5, 7, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert split_all(chunks) == expected, size


def test_last_line_without_newline_crlf_and_empty_lines_are_kept() -> None:
    assert split_all([b"a\r\n\r\nb\r\nlast"]) == ["a", "", "b", "last"]
    assert split_all([b"one\n", b""]) == ["one"]
    assert split_all([]) == []


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert split_all([b"ok \xff\xfe end\n", b"\xc3", b"\xa9t\xc3\xa9\n"]) == [
        "ok \ufffd\ufffd end",
        "été",
    ]


def test_long_lines_are_capped_with_their_size_whatever_the_chunking() -> None:
    line = b"x" * 1000
    expected = ["y", "x" * 64 + " [line truncated: 1000 bytes]", "z"]
    assert split_all([b"y\n" + line + b"\nz\n"]) == expected
    chunks = [b"y\n", *[line[i : i + 100] for i in range(0, 1000, 100)], b"\nz\n"]
    assert split_all(chunks) == expected
    assert split_all([b"y\n", line]) == expected[:2]  # capped even without a final newline
    assert split_all([b"y\n", line[:70], line[70:] + b"\nz"]) == expected


def test_a_line_exactly_at_the_cap_is_not_truncated() -> None:
    assert split_all([b"x" * 64 + b"\n"]) == ["x" * 64]


def docker_line(seconds: float, text: str, nanos: str = "") -> str:
    stamp = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{stamp}{nanos}Z {text}"


def test_docker_timestamps_are_the_records_time_and_leave_the_text() -> None:
    parser = _LineParser(StreamKind.DOCKER, "vm1", "app")
    records = parser.parse(
        [docker_line(1.5, "listening on 0.0.0.0:3000", "123"), "no stamp here"], ARRIVAL
    )
    assert records == [
        LogRecord(T0 + timedelta(seconds=1.5), "vm1", "app", "listening on 0.0.0.0:3000"),
        LogRecord(ARRIVAL, "vm1", "app", "no stamp here"),
    ]
    point = parser.resume_point(None)
    assert point.timestamp == docker_line(1.5, "", "123").rstrip()  # nanoseconds kept verbatim


def test_plain_lines_take_json_time_or_journal_short_iso_or_arrival() -> None:
    parser = _LineParser(StreamKind.PLAIN, "vm1", "kamal-proxy")
    proxy = json.dumps({"time": "2026-05-01T10:00:02.5+02:00", "msg": "Deployed"})
    records = parser.parse(
        [proxy, "2026-05-01T10:00:03+0000 vm1 vmkit-agent[42]: healthy", "plain", "{not json"],
        ARRIVAL,
    )
    assert [r.at for r in records] == [
        datetime(2026, 5, 1, 8, 0, 2, 500000, tzinfo=UTC),
        T0 + timedelta(seconds=3),
        ARRIVAL,
        ARRIVAL,
    ]
    assert records[0].text == proxy  # JSON stays whole
    assert records[1].text == "vm1 vmkit-agent[42]: healthy"


@pytest.mark.parametrize("kind", [StreamKind.PLAIN, StreamKind.DOCKER])
def test_a_stamp_that_is_no_date_keeps_the_line_whole_and_offsets_become_utc(
    kind: StreamKind,
) -> None:
    parser = _LineParser(kind, "vm1", "app")
    lines = ["2026-13-45T10:00:00Z not a date", "2026-05-01T12:00:01.25+02:00 cest"]
    assert parser.parse(lines, ARRIVAL) == [
        LogRecord(ARRIVAL, "vm1", "app", "2026-13-45T10:00:00Z not a date"),
        LogRecord(T0 + timedelta(seconds=1.25), "vm1", "app", "cest"),
    ]
    assert parser.parse(lines, ARRIVAL)[1].at.tzinfo is UTC


def test_journal_json_entries_give_time_message_and_cursor() -> None:
    parser = _LineParser(StreamKind.JOURNAL, "vm1", "vmkit-agent")
    micros = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000) + 7
    entry = {"__CURSOR": "s=ab;i=1", "__REALTIME_TIMESTAMP": str(micros), "MESSAGE": "healthy"}
    binary = {**entry, "__CURSOR": "s=ab;i=2", "MESSAGE": list(b"bad \xff byte")}
    records = parser.parse([json.dumps(entry), json.dumps(binary)], ARRIVAL)
    assert [(r.at, r.text) for r in records] == [
        (T0 + timedelta(microseconds=7), "healthy"),
        (T0 + timedelta(microseconds=7), "bad \ufffd byte"),
    ]
    assert parser.resume_point(None).cursor == "s=ab;i=2"


def test_resume_drops_exactly_the_lines_already_seen_at_the_last_timestamp() -> None:
    parser = _LineParser(StreamKind.DOCKER, "vm1", "app")
    first = [
        docker_line(1, "a"),
        docker_line(2, "b"),
        docker_line(2, "same"),
        docker_line(2, "same"),
    ]
    assert [r.text for r in parser.parse(first, ARRIVAL)] == ["a", "b", "same", "same"]
    # `--since` is inclusive: the new connection repeats everything at t=2, then goes on
    parser.begin_resume()
    again = [
        docker_line(1.5, "older, already seen"),
        docker_line(2, "b"),
        docker_line(2, "same"),
        docker_line(2, "same"),
        docker_line(2, "same"),  # a third one at t=2 arrived during the outage: new
        docker_line(3, "c"),
        docker_line(2, "late but after the boundary"),
    ]
    assert [r.text for r in parser.parse(again, ARRIVAL)] == [
        "same",
        "c",
        "late but after the boundary",
    ]


def test_first_connection_starts_at_since_and_journal_resumes_by_cursor() -> None:
    parser = _LineParser(StreamKind.JOURNAL, "vm1", "vmkit-agent")
    assert parser.resume_point(T0).since == T0
    assert parser.resume_point(T0).cursor is None


def test_gap_marker_says_what_happened() -> None:
    target = SshTarget("deploy", "vm1")
    marker = _gap_marker(target, T0, "keepalive", T0 + timedelta(seconds=5), True)
    assert (marker.source, marker.host, marker.at) == ("vmkit", "vm1", T0 + timedelta(seconds=5))
    assert "connection lost at 10:00:00Z (keepalive)" in marker.text
    assert "reconnected at 10:00:05Z" in marker.text and "lines may be missing" in marker.text
    plain = _gap_marker(target, T0, "reset", T0, False)
    assert "missing or repeated" in plain.text


def guarded(command: str) -> subprocess.Popen[bytes]:
    """The guard runs under the remote login shell, in the session of its own that sshd gives
    every command (the guard signals its process group); here the local sh plays that part."""
    return subprocess.Popen(
        ["sh", "-c", _guarded(command)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("command", "status"), [("true", 0), ("exit 3", 3), ("no-such-cmd-x", 127)]
)
def test_guard_keeps_the_commands_exit_status(command: str, status: int) -> None:
    with guarded(command) as process:  # stdin stays open, as on an SSH channel
        assert process.wait(10) == status


def test_guard_merges_stderr_in_order_and_keeps_quotes_literal() -> None:
    with guarded("echo 'it''s'; echo \"$((1+1))\" >&2; echo done") as process:
        assert process.stdout is not None
        assert process.stdout.read() == b"its\n2\ndone\n"
        assert process.wait(10) == 0


def test_guard_kills_the_command_when_its_stdin_reaches_eof() -> None:
    with guarded("echo started; while sleep 0.05; do :; done") as process:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == b"started\n"
        process.stdin.close()  # what sshd does when the channel closes or the link dies
        assert process.wait(10) == -signal.SIGTERM
        assert process.stdout.read() == b""


TARGET = SshTarget("deploy", "203.0.113.10", 2222, identity_file=Path("/keys/id_ed25519"))


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (
            TimeoutError(),
            ConnectTimeout,
            ["no answer within 10 s", "VM may be offline", "firewall"],
        ),
        (ConnectionRefusedError(111, "Connection refused"), HostUnreachable, ["refused", "2222"]),
        (socket.gaierror(-2, "Name or service not known"), HostUnreachable, ["resolve"]),
        (OSError(113, "No route to host"), HostUnreachable, ["No route to host", "firewall"]),
        (
            asyncssh.PermissionDenied("denied"),
            AuthenticationFailed,
            ["/keys/id_ed25519", "authorized_keys"],
        ),
        (asyncssh.ConnectionLost("reset"), ConnectionDropped, ["during login", "reset"]),
    ],
)
def test_connect_errors_are_mapped_to_clear_messages(
    error: BaseException, kind: type[Exception], words: list[str]
) -> None:
    mapped = _connect_error(error, TARGET, SshOptions())
    assert type(mapped) is kind
    assert "deploy@203.0.113.10:2222" in str(mapped)
    for word in words:
        assert word in str(mapped)


def test_auth_failure_without_identity_file_names_what_was_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    mapped = _connect_error(
        asyncssh.PermissionDenied("denied"), SshTarget("deploy", "vm1"), SshOptions()
    )
    assert "default keys" in str(mapped) and "ssh-agent" in str(mapped)
    hermetic = SshOptions(ssh_config=None, use_agent=False)
    mapped = _connect_error(asyncssh.PermissionDenied("x"), SshTarget("deploy", "vm1"), hermetic)
    assert "ssh-agent" not in str(mapped) and "config" not in str(mapped)
