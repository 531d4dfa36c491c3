"""Following one log source on one host across dropped connections.

`follow()` reconnects with backoff after a drop, resumes where the source allows it (journald
cursor, docker `--since` the last line's own timestamp, dropping the lines already seen at
that timestamp) and emits one gap marker record per outage. Trust and auth failures are never
retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from vmkit_tui.sources.ssh.commands import CommandContext, StreamSpec, build_stream_command
from vmkit_tui.sources.ssh.errors import ConnectionDropped, HostUnreachable
from vmkit_tui.sources.ssh.lines import _LineParser
from vmkit_tui.sources.ssh.session import _exit_status, _failed, _lines, _process
from vmkit_tui.sources.ssh.target import SshOptions, SshTarget
from vmkit_tui.store.spool import LogRecord

VMKIT_SOURCE = "vmkit"  # source label of the records the client writes itself (gap markers)

_RETRIABLE = (HostUnreachable, ConnectionDropped)


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


def _gap_marker(
    target: SshTarget, lost_at: datetime, reason: str, back_at: datetime, resumable: bool
) -> LogRecord:
    if resumable:
        outcome = "resumed after the last line received; lines may be missing"
    else:
        outcome = "command restarted; lines may be missing or repeated"
    text = (
        f"— connection lost at {_clock(lost_at)} ({reason}); "
        f"reconnected at {_clock(back_at)}; {outcome} —"
    )
    return LogRecord(back_at, target.host, VMKIT_SOURCE, text)


async def follow(
    target: SshTarget,
    spec: StreamSpec,
    context: CommandContext | None = None,
    *,
    since: datetime | None = None,
    options: SshOptions | None = None,
) -> AsyncGenerator[LogRecord, None]:
    """Follow one log source on one host until the command ends (exit 0) or the iterator is
    closed. The first connection's errors are raised (the user must see "VM offline" or
    "host key changed" at once); after that, drops and unreachable periods are retried with
    exponential backoff, and each outage leaves exactly one gap marker record (source
    "vmkit"). Trust, auth and command errors are raised at any time."""
    options = options or SshOptions()
    context = context or CommandContext()
    parser = _LineParser(spec.kind, target.host, spec.source)
    connected = False
    lost: tuple[datetime, str] | None = None
    attempt = 0
    last = ""
    while True:
        command = build_stream_command(spec, context, parser.resume_point(since))
        try:
            async with _process(target, command, options) as proc:
                connected, attempt = True, 0
                if lost is not None:
                    yield _gap_marker(target, *lost, datetime.now(UTC), spec.resumable)
                    lost = None
                    parser.begin_resume()
                async for lines in _lines(proc, target, options.max_line_bytes):
                    last = lines[-1]
                    for record in parser.parse(lines, datetime.now(UTC)):
                        yield record
                status = await _exit_status(proc, target, command, last)
            if status != 0:
                raise _failed(status, target, command, last)
            return
        except _RETRIABLE as exc:
            if not connected:
                raise
            if lost is None:
                lost = (datetime.now(UTC), exc.reason)
            delay = min(options.reconnect_delay * 2**attempt, options.reconnect_max_delay)
            attempt += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
