"""What the sandbox VM understands: exactly the commands our client builds, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.sandbox.servers.vm_commands import (
    DockerLogs,
    Flood,
    Journal,
    JournalCursor,
    Kamal,
    Refused,
    docker_line,
    flood_chunks,
    format_cursor,
    journal_entry,
    parse_command,
    parse_cursor,
    to_bytes,
    unwrap_guard,
)
from vmkit_tui.sources.ssh.commands import (
    DEFAULT_STREAMS,
    CommandContext,
    ResumePoint,
    build_stream_command,
    kamal_lock_status,
    kamal_redeploy,
    kamal_rollback,
)
from vmkit_tui.sources.ssh.session import _guarded

AT = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
SHA = "0123456789abcdef0123456789abcdef01234567"


def sent(command: str) -> str:
    """What goes over the wire: our client always wraps the command in its guard."""
    return _guarded(command)


def test_docker_log_commands_with_every_resume_point() -> None:
    spec = DEFAULT_STREAMS["kamal-proxy"]
    first = build_stream_command(spec, CommandContext(), ResumePoint(since=AT))
    assert parse_command(sent(first)) == DockerLogs("kamal-proxy", since_ns=1777636800123456000)
    resumed = build_stream_command(
        spec, CommandContext(), ResumePoint(timestamp="2026-05-01T12:00:00.123456001Z")
    )
    parsed = parse_command(sent(resumed))
    assert isinstance(parsed, DockerLogs) and parsed.since_ns == 1777636800123456001
    assert parsed.start == AT + timedelta(microseconds=1)  # inclusive, rounded up to a µs
    tail = build_stream_command(spec, CommandContext(), ResumePoint())
    assert parse_command(sent(tail)) == DockerLogs("kamal-proxy", tail=100)
    app = build_stream_command(
        DEFAULT_STREAMS["app"], CommandContext(service="shop", destination="production", sha=SHA)
    )
    assert parse_command(sent(app)) == DockerLogs(f"shop-web-production-{SHA}", tail=100)
    offset = parse_command(
        "docker logs --follow --timestamps --since 2026-05-01T14:00:00+02:00 -- x"
    )
    assert isinstance(offset, DockerLogs) and offset.start == AT.replace(microsecond=0)


def test_journal_commands_and_cursor_round_trip() -> None:
    spec = DEFAULT_STREAMS["vmkit-agent"]
    cursor = format_cursor("vm-1", JournalCursor(1_777_636_800_123_456, 2))
    resumed = build_stream_command(spec, CommandContext(), ResumePoint(cursor=cursor))
    assert parse_command(sent(resumed)) == Journal(after=JournalCursor(1_777_636_800_123_456, 2))
    since = build_stream_command(spec, CommandContext(), ResumePoint(since=AT))
    assert parse_command(sent(since)) == Journal(since=AT.replace(microsecond=0))
    lines = build_stream_command(spec, CommandContext(), ResumePoint())
    assert parse_command(sent(lines)) == Journal(lines=100)
    assert parse_cursor("s=abc;i=zz;t=1") is None
    bad = parse_command(sent(build_stream_command(spec, CommandContext())).replace("100", "x"))
    assert isinstance(bad, Refused) and bad.status != 0


def test_kamal_commands_keep_their_argv() -> None:
    assert parse_command(sent(kamal_rollback(SHA, destination="staging"))) == Kamal(
        ("kamal", "rollback", SHA, "-d", "staging")
    )
    assert parse_command(sent(kamal_redeploy(SHA, workdir="apps/shop"))) == Kamal(
        ("kamal", "deploy", "--skip-push", "--version", SHA)
    )
    assert parse_command(kamal_lock_status()) == Kamal(("kamal", "lock", "status"))
    assert parse_command("vmkit-sandbox-flood 1000") == Flood(1000)


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("uptime", Refused("sh: 1: uptime: not found\n", 127)),
        ("cat /etc/shadow", Refused("sh: 1: cat: not found\n", 127)),
        ("vmkit-sandbox-flood lots", Refused("sh: 1: vmkit-sandbox-flood: not found\n", 127)),
        ("echo 'unterminated", Refused("sh: 1: Syntax error: Unterminated quoted string\n", 2)),
    ],
)
def test_anything_else_is_refused_like_sh_would(command: str, refusal: Refused) -> None:
    assert parse_command(sent(command)) == refusal
    assert parse_command(command) == refusal


def test_only_our_exact_guard_is_unwrapped() -> None:
    assert unwrap_guard(sent("docker ps")) == "docker ps"
    tampered = sent("docker ps").replace("kill -TERM 0", "true")
    assert unwrap_guard(tampered) == tampered
    assert isinstance(parse_command(tampered), Refused)  # `exec` is not a program it runs
    assert unwrap_guard("docker ps") == "docker ps"


def test_output_formats() -> None:
    assert docker_line(AT, b"hello \xff") == b"2026-05-01T12:00:00.123456000Z hello \xff\n"
    entry = json.loads(journal_entry("vm-1", AT, 3, b"ok"))
    assert entry["MESSAGE"] == "ok" and entry["__REALTIME_TIMESTAMP"] == "1777636800123456"
    assert parse_cursor(entry["__CURSOR"]) == JournalCursor(1777636800123456, 3)
    assert json.loads(journal_entry("vm-1", AT, 0, b"a\xff"))["MESSAGE"] == [97, 255]
    assert to_bytes("raw \udcff byte") == b"raw \xff byte"
    assert to_bytes("caf\u00e9") == "caf\u00e9".encode()


def test_flood_makes_exactly_n_timestamped_proxy_lines() -> None:
    data = b"".join(flood_chunks(AT, 5000, chunk_lines=1024))
    lines = data.split(b"\n")
    assert lines.pop() == b"" and len(lines) == 5000
    stamp, _, body = lines[4999].partition(b" ")
    assert stamp == b"2026-05-01T12:00:00.128455000Z"
    doc = json.loads(body)
    assert doc["msg"] == "Request" and doc["time"] == "2026-05-01T12:00:00.128455Z"
