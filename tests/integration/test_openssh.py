"""vmkit_tui.sources.ssh against a REAL OpenSSH sshd on 127.0.0.1 (started by the tests).

What only a real sshd can show: that closing a stream leaves nothing running on the VM, that
a dropped connection is resumed without repeats, and that host-key and auth failures come out
as the clear errors the user sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from tests.integration.ssh_fixtures import FAKE_LOGS, SSHD, TEST_OPTIONS, Sshd, write_key
from vmkit_tui.sources.ssh import (
    AuthenticationFailed,
    ConnectionDropped,
    ConnectTimeout,
    HostKeyRefused,
    HostUnreachable,
    RemoteCommandFailed,
    RemoteCommandNotFound,
    SshOptions,
    SshTarget,
    follow,
    run,
    stream,
)
from vmkit_tui.sources.ssh.commands import StreamKind, StreamSpec
from vmkit_tui.store.spool import LogRecord

pytestmark = [
    pytest.mark.skipif(not SSHD.exists(), reason="OpenSSH server not installed (/usr/sbin/sshd)"),
    pytest.mark.timeout(60),
]

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd.start(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


async def collect(records: AsyncIterator[LogRecord], limit: int = 10_000) -> list[LogRecord]:
    out: list[LogRecord] = []
    async with contextlib.aclosing(records) as stream_:  # type: ignore[type-var]
        async for record in stream_:
            out.append(record)
            if len(out) >= limit:
                break
    return out


async def remote_processes(target: SshTarget, pattern: str) -> list[str]:
    """`pgrep -fa` on the VM, over a second SSH connection. The pattern's first character is
    bracketed so pgrep does not find its own command line."""
    result = await run(
        target, f"pgrep -fa '[{pattern[0]}]{pattern[1:]}' || true", options=TEST_OPTIONS
    )
    return result.lines


async def wait_until_gone(target: SshTarget, pattern: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while left := await remote_processes(target, pattern):
            await asyncio.sleep(0.05)
    assert not left


async def test_streams_a_follow_command_line_by_line(sshd: Sshd) -> None:
    command = "sh -c 'i=0; while :; do echo \"line $i\"; i=$((i+1)); sleep 0.02; done'"
    records = await collect(stream(sshd.target(), command, "ticker", options=TEST_OPTIONS), 25)
    assert [r.text for r in records] == [f"line {i}" for i in range(25)]
    assert {(r.host, r.source) for r in records} == {("127.0.0.1", "ticker")}
    assert all(r.at.tzinfo is UTC for r in records)
    assert [r.at for r in records] == sorted(r.at for r in records)


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_stopping_a_stream_leaves_no_follower_on_the_vm(sshd: Sshd, how: str) -> None:
    """A quiet follower never writes, so it would never die of SIGPIPE: only the guard's
    SIGTERM on channel close ends it (an unguarded one outlives the channel on OpenSSH)."""
    marker = f"vmkit-quiet-{how}"
    command = f"sh -c 'echo started; while sleep 0.05; do :; done' {marker}"
    target = sshd.target()
    records = stream(target, command, "quiet", options=TEST_OPTIONS)
    if how == "close":
        assert (await anext(records)).text == "started"
        assert await remote_processes(target, marker)  # it really runs on the VM
        await records.aclose()
    else:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in records:
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await wait_until_gone(target, marker)


async def test_changed_host_key_is_refused_with_fingerprint_and_file(
    sshd: Sshd, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    with pytest.raises(HostKeyRefused) as caught:
        await run(sshd.target(known_hosts=known), "true", options=TEST_OPTIONS)
    error = caught.value
    offered = sshd.host_key.get_fingerprint("sha256")
    assert error.changed and error.fingerprint == offered and error.known_hosts == known
    message = str(error)
    for part in ("CHANGED", f"127.0.0.1:{sshd.port}", offered, str(known), "man-in-the-middle"):
        assert part in message


@pytest.mark.parametrize("known_hosts", ["missing", "other hosts only"])
async def test_unknown_host_key_is_refused_never_accepted(
    sshd: Sshd, tmp_path: Path, known_hosts: str
) -> None:
    known = tmp_path / "known_hosts"
    if known_hosts == "other hosts only":
        key = sshd.host_key.export_public_key().decode().strip()
        known.write_text(f"[127.0.0.1]:{sshd.port + 1} {key}\nvm9.example.com {key}\n")
    before = known.read_bytes() if known.exists() else None
    with pytest.raises(HostKeyRefused) as caught:
        await run(sshd.target(known_hosts=known), "true", options=TEST_OPTIONS)
    assert not caught.value.changed
    assert sshd.host_key.get_fingerprint("sha256") in str(caught.value)
    assert "unknown host key" in str(caught.value) and str(known) in str(caught.value)
    assert (known.read_bytes() if known.exists() else None) == before  # nothing auto-added


async def test_wrong_client_key_is_an_authentication_failure_naming_the_key(
    sshd: Sshd, tmp_path: Path
) -> None:
    stranger = write_key(tmp_path / "stranger", asyncssh.generate_private_key("ssh-ed25519"))
    with pytest.raises(AuthenticationFailed) as caught:
        await run(sshd.target(identity_file=stranger), "true", options=TEST_OPTIONS)
    assert str(stranger) in str(caught.value) and "authorized_keys" in str(caught.value)


async def test_missing_identity_file_is_reported_as_such(sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(AuthenticationFailed, match="cannot read the identity file"):
        await run(sshd.target(identity_file=tmp_path / "nope"), "true", options=TEST_OPTIONS)


async def test_exit_127_is_remote_command_not_found(sshd: Sshd) -> None:
    records = stream(sshd.target(), "journalctl-not-installed -f", "agent", options=TEST_OPTIONS)
    with pytest.raises(RemoteCommandNotFound) as caught:
        await collect(records)
    assert caught.value.exit_status == 127
    assert "journalctl-not-installed" in str(caught.value) and "not found" in str(caught.value)


async def test_non_zero_exit_fails_a_stream_but_is_a_result_for_run(sshd: Sshd) -> None:
    with pytest.raises(RemoteCommandFailed) as caught:
        await collect(
            stream(sshd.target(), "echo 'No such container'; exit 3", "app", options=TEST_OPTIONS)
        )
    assert caught.value.exit_status == 3 and "No such container" in str(caught.value)
    result = await run(
        sshd.target(), "echo locked; echo to-stderr >&2; exit 1", options=TEST_OPTIONS
    )
    assert (result.exit_status, result.lines, result.ok) == (1, ["locked", "to-stderr"], False)


async def test_invalid_utf8_does_not_kill_the_stream_or_connection(sshd: Sshd) -> None:
    command = r"printf 'before\n\377\376 bad\nafter\n'; sleep 0.05; echo still here"
    records = await collect(stream(sshd.target(), command, "app", options=TEST_OPTIONS))
    assert [r.text for r in records] == ["before", "\ufffd\ufffd bad", "after", "still here"]


async def test_a_megabyte_line_is_capped_and_the_next_line_survives(sshd: Sshd) -> None:
    command = "head -c 1048576 /dev/zero | tr '\\0' x; printf '\\nafter\\nno newline at end'"
    records = await collect(stream(sshd.target(), command, "app", options=TEST_OPTIONS))
    assert len(records) == 3
    assert records[0].text == "x" * 65536 + " [line truncated: 1048576 bytes]"
    assert [r.text for r in records[1:]] == ["after", "no newline at end"]


async def test_refused_port_is_host_unreachable_quickly(sshd: Sshd) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(HostUnreachable, match="connection refused"):
        await run(sshd.target(port=closed_port), "true", options=TEST_OPTIONS)


async def test_silent_port_is_a_connect_timeout(sshd: Sshd) -> None:
    with socket.socket() as sock:  # accepts TCP (backlog) but never speaks SSH
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        options = dataclasses.replace(TEST_OPTIONS, connect_timeout=0.5)
        async with asyncio.timeout(5):
            with pytest.raises(ConnectTimeout, match="VM may be offline"):
                await run(sshd.target(port=sock.getsockname()[1]), "true", options=options)


class Freezer:
    """TCP proxy in front of sshd that can stop forwarding without closing anything: a
    half-open link (dead Wi-Fi), which only keepalives detect."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frozen = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.frozen:
                writer.write(data)
                await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )
        writer.close()
        upstream_writer.close()


async def test_half_open_link_is_detected_by_keepalives(sshd: Sshd, tmp_path: Path) -> None:
    freezer = Freezer(sshd.port)
    port = await freezer.start()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {sshd.host_key.export_public_key().decode().strip()}\n")
    options = SshOptions(
        connect_timeout=5, keepalive_interval=0.3, keepalive_count_max=2,
        ssh_config=None, use_agent=False,
    )  # fmt: skip
    command = "sh -c 'while :; do echo tick; sleep 0.05; done'"
    records = stream(sshd.target(port=port, known_hosts=known), command, "app", options=options)
    try:
        assert (await anext(records)).text == "tick"
        freezer.frozen = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionDropped, match="keepalive"):
            async with asyncio.timeout(10):
                async for _ in records:
                    pass
        assert loop.time() - started < 5  # 0.3 s × 2 plus slack, not "forever"
    finally:
        await records.aclose()
        freezer.server.close()


def fake_spec(kind: StreamKind, log: Path, *, follow_it: bool = True) -> StreamSpec:
    mode = "journal" if kind is StreamKind.JOURNAL else "docker"
    flag = "--follow" if follow_it else ""
    template = f"{sys.executable} {FAKE_LOGS} {mode} {flag} --timestamps {{since}} -- {log}"
    return StreamSpec("app", template, kind)


def log_line(index: int) -> str:
    """Lines come in threes sharing one timestamp, so a docker resume (`--since` the last
    timestamp, inclusive) must drop exactly the repeats."""
    return f"{index} {T0_NS + (index // 3) * 1_000_000} line {index}\n"


@pytest.mark.parametrize("kind", [StreamKind.DOCKER, StreamKind.JOURNAL])
async def test_follow_resumes_after_a_drop_with_one_gap_marker_and_no_repeats(
    sshd: Sshd, tmp_path: Path, kind: StreamKind
) -> None:
    log = tmp_path / "app.log"
    total, drop_at = 300, 100
    log.write_text("".join(log_line(i) for i in range(50)))
    written = 50

    async def produce() -> None:
        nonlocal written
        with log.open("a") as handle:
            while written < total:
                handle.write(log_line(written))
                handle.flush()
                written += 1
                await asyncio.sleep(0.003)

    target = sshd.target()
    producer = asyncio.create_task(produce())
    lines: list[LogRecord] = []
    markers: list[LogRecord] = []
    dropped = 0
    records = follow(
        target, fake_spec(kind, log), since=T0 - timedelta(seconds=1), options=TEST_OPTIONS
    )
    try:
        async with asyncio.timeout(30):
            async for record in records:
                (markers if record.source == "vmkit" else lines).append(record)
                if len(lines) == drop_at and not dropped:
                    dropped = sshd.kill_sessions()
                if len(lines) == total:
                    break
    finally:
        await records.aclose()
        producer.cancel()
    assert dropped >= 1
    assert [r.text for r in lines] == [f"line {i}" for i in range(total)]
    assert [r.at for r in lines] == [T0 + timedelta(milliseconds=i // 3) for i in range(total)]
    assert len(markers) == 1
    assert "connection lost" in markers[0].text and "reconnected" in markers[0].text
    assert written > drop_at  # lines were written during the outage and still arrived once
    await wait_until_gone(target, str(FAKE_LOGS))  # neither the dropped nor the closed follower


async def test_follow_raises_first_connection_errors_at_once(sshd: Sshd, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    spec = fake_spec(StreamKind.DOCKER, tmp_path / "none.log")
    with pytest.raises(HostUnreachable):
        await collect(follow(sshd.target(port=closed_port), spec, options=TEST_OPTIONS))
