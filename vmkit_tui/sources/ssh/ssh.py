"""Streaming remote commands and logs from the VMs over SSH (asyncssh; no Textual).

What this module guarantees, and why:

- Host keys are always verified, against the target's known_hosts file (default
  `~/.ssh/known_hosts`). An unknown or changed key raises `HostKeyRefused` naming host:port,
  the key offered (SHA256 fingerprint) and the file to fix. Nothing is ever auto-accepted.
- Output is read as bytes in large chunks and split into lines here: invalid UTF-8 becomes
  U+FFFD (asyncssh's default strict decoding would tear down the whole connection), a last
  line without a newline is kept, and a line longer than `max_line_bytes` is cut, saying so.
- A dead network is noticed: `connect_timeout` bounds connect + login, keepalives bound a
  silent link (`keepalive_interval` × `keepalive_count_max`).
- Stopping a stream leaves nothing running on the VM. Without a PTY, sshd only closes the
  pipes when a channel closes, and a quiet `journalctl -f` would live on until its next write
  fails. So every command runs under a small POSIX `sh` guard that watches the channel's stdin
  (which the client never closes) and, when it reaches EOF — channel closed, connection lost,
  client killed — sends SIGTERM to the command's whole process group.
- Exit status: 0 ends a stream; 127 is `RemoteCommandNotFound`; other codes are
  `RemoteCommandFailed`; no status at all (channel closed, connection lost) is a drop, never a
  success.
- `follow()` reconnects with backoff after a drop, resumes where the source allows it
  (journald cursor, docker `--since` the last line's own timestamp, dropping the lines already
  seen at that timestamp) and emits one gap marker record per outage. Trust and auth failures
  are never retried.

asyncssh is imported only when a connection is made: importing this module (e.g. to parse a
target in the config) stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import re
import shlex
import socket
from collections import Counter, deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sources.ssh.commands import (
    TIMESTAMP_PATTERN,
    CommandContext,
    ResumePoint,
    StreamKind,
    StreamSpec,
    build_stream_command,
)
from vmkit_tui.store.spool import LogRecord

if TYPE_CHECKING:
    import asyncssh

__all__ = [
    "AuthenticationFailed",
    "CommandResult",
    "ConnectTimeout",
    "ConnectionDropped",
    "HostKeyRefused",
    "HostUnreachable",
    "LogRecord",
    "RemoteCommandFailed",
    "RemoteCommandNotFound",
    "SshError",
    "SshOptions",
    "SshTarget",
    "follow",
    "parse_target",
    "run",
    "stream",
]

VMKIT_SOURCE = "vmkit"  # source label of the records this module writes itself (gap markers)
_READ_SIZE = 1 << 15  # below max_line_bytes, so most reads decode in one go
_USER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_HOST_PATTERN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_PREFIX_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})) ?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to connect and how to trust it. `known_hosts` None means `~/.ssh/known_hosts`
    (never "don't check"); `identity_file` None means the default keys / ssh-agent."""

    user: str
    host: str
    port: int = 22
    identity_file: Path | None = None
    known_hosts: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not _USER_PATTERN.fullmatch(self.user):
            raise ValidationError(f"invalid SSH user name: {self.user!r:.60}")
        if not _valid_host(self.host):
            raise ValidationError(f"invalid SSH host: {self.host!r:.80}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValidationError(f"invalid SSH port: {self.port!r:.20}")
        if not 1 <= self.port <= 65535:
            raise ValidationError(f"SSH port out of range: {self.port}")

    @property
    def address(self) -> str:
        """`host:port` as people write it (`[v6]:port`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def known_hosts_path(self) -> Path:
        return (self.known_hosts or Path("~/.ssh/known_hosts")).expanduser()

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{host}{suffix}"


def _valid_host(host: object) -> bool:
    if not isinstance(host, str) or not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_PATTERN.fullmatch(host) is not None and ".." not in host
    return True


def _parse_port(text: str, whole: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValidationError(f"invalid SSH port in {whole!r:.80}")
    return int(text)


def _ipv6(host: str, whole: str) -> str:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValidationError(f"invalid IPv6 address in {whole!r:.80}") from None
    return host


def parse_target(
    text: str, *, identity_file: Path | None = None, known_hosts: Path | None = None
) -> SshTarget:
    """Parse `user@host`, `user@host:port`, `user@[v6]`, `user@[v6]:port` or `user@v6`."""
    if not isinstance(text, str):
        raise ValidationError(f"expected user@host[:port], got {text!r:.60}")
    user, at_sign, rest = text.partition("@")
    if not at_sign or not user or not rest or "@" in rest:
        raise ValidationError(f"expected user@host[:port], got {text!r:.80}")
    port = 22
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValidationError(f"expected user@[address]:port, got {text!r:.80}")
        if after:
            port = _parse_port(after[1:], text)
        host = _ipv6(host, text)
    elif rest.count(":") > 1:
        host = _ipv6(rest, text)  # a bare IPv6 address cannot carry a port
    else:
        host, colon, port_text = rest.partition(":")
        if colon:
            port = _parse_port(port_text, text)
    return SshTarget(user, host, port, identity_file, known_hosts)


@dataclass(frozen=True, slots=True)
class SshOptions:
    """Connection and stream behaviour. Tests pass `use_ssh_config=False, use_agent=False`
    with an explicit identity file so nothing from the developer's ~/.ssh leaks in."""

    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    use_ssh_config: bool = True
    use_agent: bool = True
    max_line_bytes: int = 64 * 1024
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 30.0


# --------------------------------------------------------------------------- errors


class SshError(Exception):
    """Base of every error this module raises; `str()` is a message for humans."""

    def __init__(self, message: str, target: SshTarget | None = None) -> None:
        super().__init__(message)
        self.target = target


class HostUnreachable(SshError):
    """No SSH connection: refused, no route, unknown name (transient: a VM may come back)."""

    def __init__(self, message: str, target: SshTarget, *, reason: str) -> None:
        super().__init__(message, target)
        self.reason = reason


class ConnectTimeout(HostUnreachable):
    """No answer within connect_timeout: typically the VM is off or a firewall drops packets."""


class ConnectionDropped(SshError):
    """The connection or channel went away mid-stream (keepalive, reset, closed channel)."""

    def __init__(self, message: str, target: SshTarget, *, reason: str) -> None:
        super().__init__(message, target)
        self.reason = reason


class AuthenticationFailed(SshError):
    """The VM refused every key offered (never retried automatically)."""


class HostKeyRefused(SshError):
    """The VM's host key is not the one in known_hosts (never retried, never accepted)."""

    def __init__(
        self,
        message: str,
        target: SshTarget,
        *,
        fingerprint: str | None,
        known_hosts: Path,
        changed: bool,
    ) -> None:
        super().__init__(message, target)
        self.fingerprint = fingerprint
        self.known_hosts = known_hosts
        self.changed = changed


class RemoteCommandFailed(SshError):
    """The remote command ended with a non-zero status or was killed by a signal."""

    def __init__(
        self,
        message: str,
        target: SshTarget,
        *,
        exit_status: int | None,
        signal: str | None = None,
        last_line: str = "",
    ) -> None:
        super().__init__(message, target)
        self.exit_status = exit_status
        self.signal = signal
        self.last_line = last_line


class RemoteCommandNotFound(RemoteCommandFailed):
    """Exit 127: the shell on the VM could not find the command (not installed, not in PATH)."""


_RETRIABLE = (HostUnreachable, ConnectionDropped)


def _program(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else command


def _connect_error(exc: BaseException, target: SshTarget, options: SshOptions) -> SshError:
    """Turn what asyncssh / the OS raised while connecting into one clear error."""
    import asyncssh

    where = f"{target.user}@{target.address}"
    if isinstance(exc, asyncssh.PermissionDenied):
        if target.identity_file is not None:
            tried = f"the key {target.identity_file}"
        else:
            tried = "the default keys (~/.ssh/id_*)"
            if options.use_ssh_config:
                tried += ", IdentityFile from ~/.ssh/config"
            if options.use_agent and os.environ.get("SSH_AUTH_SOCK"):
                tried += " and the keys in ssh-agent"
        return AuthenticationFailed(
            f"authentication failed for {where} with {tried}: the VM refused them. "
            f"Check that the public key is in ~{target.user}/.ssh/authorized_keys on the VM, "
            "or set identity_file for this environment.",
            target,
        )
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(
            f"cannot reach {where}: no answer within {options.connect_timeout:g} s. "
            "The VM may be offline, or a firewall may be dropping SSH traffic.",
            target,
            reason="connect timeout",
        )
    if isinstance(exc, ConnectionRefusedError):
        return HostUnreachable(
            f"cannot reach {where}: connection refused. The VM may be offline or sshd not "
            f"running, or a firewall rejects port {target.port}.",
            target,
            reason="connection refused",
        )
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(
            f"cannot resolve the host name of {where}: {exc.strerror or exc}",
            target,
            reason="unknown host name",
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return HostUnreachable(
            f"cannot reach {where}: {reason}. The VM may be offline or behind a firewall.",
            target,
            reason=reason,
        )
    if isinstance(exc, asyncssh.DisconnectError):
        reason = exc.reason or type(exc).__name__
        return ConnectionDropped(
            f"{where} closed the connection during login: {reason}", target, reason=reason
        )
    return SshError(f"SSH to {where} failed: {exc}", target)


def _stream_error(exc: BaseException, target: SshTarget) -> ConnectionDropped:
    """Errors once connected: every one of them means the stream is gone."""
    import asyncssh

    if isinstance(exc, asyncssh.DisconnectError):
        reason = exc.reason or type(exc).__name__
    else:
        reason = str(exc) or type(exc).__name__
    return ConnectionDropped(f"connection to {target} lost: {reason}", target, reason=reason)


# --------------------------------------------------------------------------- connecting


def _read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    import asyncssh

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""  # trust nothing: every host key is refused, with the fingerprint shown
    return asyncssh.import_known_hosts(text)


def _host_key_error(
    target: SshTarget, known: asyncssh.SSHKnownHosts, offered: asyncssh.SSHKey | None
) -> HostKeyRefused:
    path = target.known_hosts_path
    trusted = known.match(target.host, "", None if target.port == 22 else target.port)[0]
    changed = bool(trusted)
    fingerprint = offered.get_fingerprint("sha256") if offered is not None else None
    key_text = f"{offered.get_algorithm()} key {fingerprint}" if offered is not None else "key"
    entry = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    if changed:
        message = (
            f"HOST KEY CHANGED for {target.address}: the VM offered the {key_text}, which "
            f"does not match the key for {entry} in {path}. This can be a man-in-the-middle "
            "attack, or the VM was rebuilt. Only if you know it was rebuilt and that "
            f"fingerprint is right, remove the old entry (ssh-keygen -R '{entry}' -f {path}) "
            "and add the new one."
        )
    else:
        message = (
            f"unknown host key for {target.address}: the VM offered the {key_text}, and "
            f"{entry} is not in {path}. Check that fingerprint with the VM's provider, then "
            f"add the key to {path} (e.g. ssh-keyscan -p {target.port} {target.host})."
        )
    return HostKeyRefused(
        message, target, fingerprint=fingerprint, known_hosts=path, changed=changed
    )


async def connect(
    target: SshTarget, options: SshOptions | None = None
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to `target`, or one of this module's errors."""
    import asyncssh

    options = options or SshOptions()
    known = await asyncio.to_thread(_read_known_hosts, target.known_hosts_path)
    offered: list[asyncssh.SSHKey] = []

    class _Client(asyncssh.SSHClient):
        """Remembers the host key the server offered when it is not trusted."""

        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            offered.append(key)
            return False

    kwargs: dict[str, Any] = {
        "username": target.user,
        "port": target.port,
        "known_hosts": known,
        "client_factory": _Client,
        "connect_timeout": options.connect_timeout,
        "keepalive_interval": options.keepalive_interval,
        "keepalive_count_max": options.keepalive_count_max,
    }
    if not options.use_ssh_config:
        kwargs["config"] = None
    if not options.use_agent:
        kwargs["agent_path"] = None
    if target.identity_file is not None:
        kwargs["client_keys"] = [str(target.identity_file.expanduser())]
    try:
        return await asyncssh.connect(target.host, **kwargs)
    except asyncssh.HostKeyNotVerifiable:
        raise _host_key_error(target, known, offered[-1] if offered else None) from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise AuthenticationFailed(
            f"cannot use the identity file {target.identity_file}: {exc}. An encrypted key "
            "must be loaded into ssh-agent (ssh-add) and identity_file left unset.",
            target,
        ) from None
    except FileNotFoundError as exc:
        raise AuthenticationFailed(
            f"cannot read the identity file {exc.filename or target.identity_file}", target
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise _connect_error(exc, target, options) from None


# --------------------------------------------------------------------------- lines


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


# --------------------------------------------------------------------------- running


@asynccontextmanager
async def _process(
    target: SshTarget, command: str, options: SshOptions
) -> AsyncIterator[asyncssh.SSHClientProcess[bytes]]:
    """Connect, start the guarded command, and always close channel and connection."""
    import asyncssh

    conn = await connect(target, options)
    try:
        try:
            proc = await conn.create_process(
                _guarded(command), stderr=asyncssh.STDOUT, encoding=None
            )
        except (OSError, asyncssh.Error) as exc:
            raise _stream_error(exc, target) from None
        try:
            yield proc
        finally:
            proc.close()
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await conn.wait_closed()


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


# --------------------------------------------------------------------------- following


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
