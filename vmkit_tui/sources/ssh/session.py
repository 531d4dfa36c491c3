"""Running one command on a VM: `stream` its output as records, or `run` it and collect it.

Stopping a stream leaves nothing running on the VM. Without a PTY, sshd only closes the pipes
when a channel closes, and a quiet `journalctl -f` would live on until its next write fails.
So every command runs under a small POSIX `sh` guard (`_guarded`) that watches the channel's
stdin (which the client never closes) and, when it reaches EOF (channel closed, connection
lost, client killed), sends SIGTERM to the command's whole process group.

Exit status: 0 ends a stream; 127 is `RemoteCommandNotFound`; other codes are
`RemoteCommandFailed`; no status at all (channel closed, connection lost) is a drop, never a
success.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vmkit_tui.sources.ssh.commands import StreamKind
from vmkit_tui.sources.ssh.connect import connect
from vmkit_tui.sources.ssh.errors import (
    ConnectionDropped,
    RemoteCommandFailed,
    RemoteCommandNotFound,
)
from vmkit_tui.sources.ssh.lines import _LineParser, _LineSplitter
from vmkit_tui.sources.ssh.target import SshOptions, SshTarget
from vmkit_tui.store.spool import LogRecord

if TYPE_CHECKING:
    import asyncssh

_READ_SIZE = 1 << 15  # below max_line_bytes, so most reads decode in one go


def _guarded(command: str) -> str:
    """`command` under a POSIX sh guard: when the channel's stdin reaches EOF (the client
    closed the channel, the connection died, the client was killed), SIGTERM goes to the
    whole process group, so no follower outlives its stream. stderr is merged into stdout
    remotely to keep the order of lines; the exit status is the command's own.

    `kill 0` reaches only this command: sshd starts every session command in a session (and
    process group) of its own. The client never closes the channel's stdin while streaming."""
    script = (
        "exec 3<&0 </dev/null\n"
        "{ cat <&3 >/dev/null 2>&1; kill -TERM 0; } >/dev/null 2>&1 &\n"
        "vmkit_watcher=$!\n"
        f"{{\n{command}\n}} 3<&- 2>&1\n"
        "vmkit_status=$?\n"
        "kill $vmkit_watcher 2>/dev/null\n"
        "exit $vmkit_status\n"
    )
    return f"exec sh -c {shlex.quote(script)}"


def _program(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else command


def _stream_error(exc: BaseException, target: SshTarget) -> ConnectionDropped:
    """Errors once connected: every one of them means the stream is gone."""
    import asyncssh

    if isinstance(exc, asyncssh.DisconnectError):
        reason = exc.reason or type(exc).__name__
    else:
        reason = str(exc) or type(exc).__name__
    return ConnectionDropped(f"connection to {target} lost: {reason}", target, reason=reason)


@asynccontextmanager
async def _process(
    target: SshTarget, command: str, options: SshOptions
) -> AsyncIterator[asyncssh.SSHClientProcess[bytes]]:
    """Connect, start the guarded command, and always close channel and connection. The
    command (as the VM runs it, inside the guard) goes to `options.calls` when it starts and
    when it ends."""
    import asyncssh

    calls, started, proc, note = options.calls, time.perf_counter(), None, ""
    try:
        conn = await connect(target, options)
        try:
            try:
                proc = await conn.create_process(
                    _guarded(command), stderr=asyncssh.STDOUT, encoding=None
                )
            except (OSError, asyncssh.Error) as exc:
                raise _stream_error(exc, target) from None
            if calls is not None:
                calls.ssh(str(target), command, None, started, "running")
            try:
                yield proc
            finally:
                proc.close()
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()
    except BaseException as exc:
        note = _why_ended(exc)
        raise
    finally:
        if calls is not None:
            status = proc.exit_status if proc is not None else None
            if proc is not None and proc.exit_signal is not None:
                note = f"killed by signal {proc.exit_signal[0]}"
            if status is None or status < 0:
                status, note = None, note or "stopped"
            calls.ssh(str(target), command, status, started, note)


def _why_ended(exc: BaseException) -> str:
    """The command log's note for a command that ended by an exception."""
    if isinstance(exc, GeneratorExit | asyncio.CancelledError):
        return "stopped"
    return str(exc) or type(exc).__name__


async def _lines(
    proc: asyncssh.SSHClientProcess[bytes], target: SshTarget, max_line_bytes: int
) -> AsyncIterator[list[str]]:
    """The command's output lines as they arrive, one list per read."""
    import asyncssh

    splitter = _LineSplitter(max_line_bytes)
    read = proc.stdout.read
    while True:
        try:
            chunk = await read(_READ_SIZE)
        except (OSError, asyncssh.Error) as exc:
            raise _stream_error(exc, target) from None
        lines = splitter.feed(chunk) if chunk else splitter.finish()
        if lines:
            yield lines
        if not chunk:
            return


async def _exit_status(
    proc: asyncssh.SSHClientProcess[bytes], target: SshTarget, command: str, last_line: str
) -> int:
    """The command's exit status once its output ended; raises when there is none (a drop)
    or the command was not found."""
    import asyncssh

    try:
        await proc.wait()
    except (OSError, asyncssh.Error) as exc:
        raise _stream_error(exc, target) from None
    status, signal = proc.exit_status, proc.exit_signal
    if signal is not None:
        raise RemoteCommandFailed(
            f"`{_program(command)}` on {target} was killed by signal {signal[0]}",
            target,
            exit_status=None,
            signal=signal[0],
            last_line=last_line,
        )
    if status is None or status < 0:
        raise ConnectionDropped(
            f"the channel to {target} closed before `{_program(command)}` reported an exit status",
            target,
            reason="channel closed without exit status",
        )
    if status == 127:
        raise RemoteCommandNotFound(
            f"`{_program(command)}` was not found on {target} (exit 127): {last_line[:200]}",
            target,
            exit_status=127,
            last_line=last_line,
        )
    return status


def _failed(status: int, target: SshTarget, command: str, last_line: str) -> RemoteCommandFailed:
    return RemoteCommandFailed(
        f"`{_program(command)}` on {target} failed with exit status {status}: {last_line[:200]}",
        target,
        exit_status=status,
        last_line=last_line,
    )


async def stream(
    target: SshTarget, command: str, source: str, *, options: SshOptions | None = None
) -> AsyncGenerator[LogRecord, None]:
    """Run `command` once and yield its output lines as records (timestamps from the lines
    when they carry one — docker/journal prefix, JSON `time` — else arrival time). Ends on
    exit 0; raises `RemoteCommandFailed`/`RemoteCommandNotFound`/`ConnectionDropped` else.
    Closing the iterator stops the remote command."""
    options = options or SshOptions()
    parser = _LineParser(StreamKind.PLAIN, target.host, source)
    last = ""
    async with _process(target, command, options) as proc:
        async for lines in _lines(proc, target, options.max_line_bytes):
            last = lines[-1]
            for record in parser.parse(lines, datetime.now(UTC)):
                yield record
        status = await _exit_status(proc, target, command, last)
    if status != 0:
        raise _failed(status, target, command, last)


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    lines: list[str]
    truncated: bool  # more than max_lines lines: the first ones were dropped

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


async def run(
    target: SshTarget,
    command: str,
    *,
    options: SshOptions | None = None,
    max_lines: int = 10_000,
) -> CommandResult:
    """Run a short command and collect its raw output lines (the last `max_lines`). A
    non-zero exit is a result, not an error (`kamal lock status` uses it); exit 127 and a
    missing exit status still raise."""
    options = options or SshOptions()
    kept: deque[str] = deque(maxlen=max_lines)
    total = 0
    async with _process(target, command, options) as proc:
        async for lines in _lines(proc, target, options.max_line_bytes):
            total += len(lines)
            kept.extend(lines)
        status = await _exit_status(proc, target, command, kept[-1] if kept else "")
    return CommandResult(status, list(kept), total > len(kept))
