"""What the sandbox VM understands: the exact commands vmkit-tui sends, and the bytes it answers.

Pure functions (no asyncssh, no I/O), so the SSH server stays a thin loop around them.

A command arrives as one string, as an SSH exec request does. Our client wraps each one in a
small `sh` guard (`vmkit_tui.sources.ssh.session`); the sandbox recognises that exact wrapper and unwraps it,
then splits the command with `shlex.split` and matches the argv against the shapes the client
builds (`vmkit_tui.sources.ssh.commands`):

- `docker logs --follow --timestamps (--since TS | --tail N) -- NAME`: kamal-proxy's log, or an
  app container's. Lines carry docker's `--timestamps` prefix (RFC 3339, nine fractional
  digits); `--since` is inclusive, as docker's is.
- `journalctl --unit vmkit-agent --follow --output json --no-pager (--after-cursor C |
  --since @EPOCH | --lines N)`: journal entries as JSON with `__CURSOR` and
  `__REALTIME_TIMESTAMP`; a non-UTF-8 message is a byte array, as journald writes it. The
  sandbox's cursor encodes the entry's time (`t`, µs) and its ordinal among the entries of that
  microsecond (`i`), so `--after-cursor` resumes exactly after it.
- `docker container ls --all --no-trunc --filter label=service=S [--filter
  label=destination=D] --format F` (what `kamal app containers` runs, with the format
  `sources.ssh.containers` asks for): the VM's app containers, one tab-separated line each.
- `[cd -- DIR &&] kamal …`: handed to the world's Kamal (deploy host only).
- `vmkit-sandbox-flood N`: the benchmark's firehose of N kamal-proxy-like lines.

Anything else is what `sh` says about an unknown program: `sh: 1: <cmd>: not found`, exit 127.
"""

from __future__ import annotations

import hashlib
import random
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from vmkit_tui.domain.models import WORKDIR_PATTERN
from vmkit_tui.sources.ssh.commands import CURSOR_PATTERN, TIMESTAMP_PATTERN
from vmkit_tui.sources.ssh.containers import FORMAT as CONTAINER_FORMAT
from vmkit_tui.sources.ssh.session import _guarded

__all__ = [
    "AGENT_UNIT",
    "Command",
    "DockerContainers",
    "DockerLogs",
    "Flood",
    "Journal",
    "JournalCursor",
    "Kamal",
    "Refused",
    "docker_line",
    "flood_chunks",
    "journal_entry",
    "parse_command",
    "to_bytes",
    "unwrap_guard",
]

AGENT_UNIT = "vmkit-agent"
FLOOD_COMMAND = "vmkit-sandbox-flood"
MAX_FLOOD = 100_000_000
_GUARDED_BODY = re.compile(r"\{\n(.*)\n\} 3<&- 2>&1\n", re.DOTALL)
_COUNT = re.compile(r"[0-9]{1,9}")
_EPOCH_ARG = re.compile(r"@[0-9]{1,12}")
_STAMP_PARTS = re.compile(r"(.{19})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class DockerLogs:
    """`docker logs --follow --timestamps …`: `since_ns` inclusive, or the last `tail` lines."""

    name: str
    since_ns: int | None = None
    tail: int | None = None

    @property
    def start(self) -> datetime | None:
        """The first microsecond whose lines are shown (`since_ns` rounded up)."""
        if self.since_ns is None:
            return None
        return _EPOCH + timedelta(microseconds=-(-self.since_ns // 1000))


@dataclass(frozen=True, slots=True)
class DockerContainers:
    """`docker container ls --all …` filtered by Kamal's labels."""

    service: str
    destination: str | None


@dataclass(frozen=True, slots=True)
class JournalCursor:
    at_us: int  # the entry's time, µs since the epoch
    ordinal: int  # its place among the entries of that microsecond

    @property
    def at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.at_us)


@dataclass(frozen=True, slots=True)
class Journal:
    """`journalctl --unit vmkit-agent --follow --output json …`."""

    after: JournalCursor | None = None
    since: datetime | None = None  # inclusive
    lines: int | None = None


@dataclass(frozen=True, slots=True)
class Kamal:
    argv: tuple[str, ...]  # starts with "kamal"


@dataclass(frozen=True, slots=True)
class Flood:
    count: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A command the VM does not run: what it prints on stderr, and its exit status."""

    message: str
    status: int


Command = DockerLogs | DockerContainers | Journal | Kamal | Flood | Refused


def unwrap_guard(command: str) -> str:
    """The command inside our client's `sh` guard, or `command` itself when it is not exactly
    that wrapper (a plain SSH client, or a tool run by hand)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) != 4 or words[:3] != ["exec", "sh", "-c"]:
        return command
    match = _GUARDED_BODY.search(words[3])
    if match is None or _guarded(match.group(1)) != command:
        return command
    return match.group(1)


def _not_found(program: str) -> Refused:
    return Refused(f"sh: 1: {program}: not found\n", 127)


def _timestamp_ns(text: str) -> int | None:
    """An RFC 3339 timestamp (up to nanoseconds, `Z` or an offset) → ns since the epoch."""
    match = _STAMP_PARTS.fullmatch(text)
    if match is None or not TIMESTAMP_PATTERN.fullmatch(text):
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def _docker_containers(words: list[str]) -> Command:
    """The label filters and format `sources.ssh.containers` sends, and nothing else."""
    rest = words[3:]
    if rest[:2] != ["--all", "--no-trunc"] or rest[-2:] != ["--format", CONTAINER_FORMAT]:
        return Refused('docker: unsupported arguments (the sandbox answers "container ls")\n', 1)
    filters = rest[2:-2]
    labels: dict[str, str] = {}
    for option, value in zip(filters[::2], filters[1::2], strict=False):
        key, _, wanted = value.removeprefix("label=").partition("=")
        if option != "--filter" or not value.startswith("label=") or key in labels:
            return Refused(f"invalid filter '{value}'\n", 1)
        labels[key] = wanted
    if len(filters) % 2 or "service" not in labels or set(labels) - {"service", "destination"}:
        return Refused("docker: unsupported filters\n", 1)
    return DockerContainers(labels["service"], labels.get("destination"))


def _docker(words: list[str]) -> Command:
    if words[1:4] == ["container", "ls", "--all"]:
        return _docker_containers(words)
    if words[:4] != ["docker", "logs", "--follow", "--timestamps"] or len(words) != 8:
        return Refused('docker: unsupported arguments (the sandbox answers "docker logs")\n', 1)
    option, value, dashes, name = words[4:]
    if dashes != "--":
        return Refused('docker: unsupported arguments (the sandbox answers "docker logs")\n', 1)
    if option == "--since":
        since = _timestamp_ns(value)
        if since is None:
            return Refused(f'invalid value for "since": "{value}"\n', 1)
        return DockerLogs(name, since_ns=since)
    if option == "--tail" and _COUNT.fullmatch(value):
        return DockerLogs(name, tail=int(value))
    return Refused(f"unknown flag: {option}\n", 125)


def _journal(words: list[str]) -> Command:
    fixed = ["journalctl", "--unit", AGENT_UNIT, "--follow", "--output", "json", "--no-pager"]
    if words[: len(fixed)] != fixed or len(words) != len(fixed) + 2:
        return Refused("journalctl: unsupported arguments\n", 1)
    option, value = words[len(fixed) :]
    if option == "--after-cursor":
        cursor = parse_cursor(value)
        if cursor is None:
            return Refused("Failed to seek to cursor: Invalid argument\n", 1)
        return Journal(after=cursor)
    if option == "--since" and _EPOCH_ARG.fullmatch(value):
        return Journal(since=_EPOCH + timedelta(seconds=int(value[1:])))
    if option == "--lines" and _COUNT.fullmatch(value):
        return Journal(lines=int(value))
    return Refused(f"journalctl: unrecognized option '{option}'\n", 1)


def parse_command(command: str) -> Command:
    """What the VM runs for this exec request (see the module docstring)."""
    try:
        words = shlex.split(unwrap_guard(command))
    except ValueError:
        return Refused("sh: 1: Syntax error: Unterminated quoted string\n", 2)
    if not words:
        return Refused("", 0)
    if len(words) > 4 and words[:2] == ["cd", "--"] and words[3] == "&&":
        if not WORKDIR_PATTERN.fullmatch(words[2]):
            return Refused(f"sh: 1: cd: can't cd to {words[2]}\n", 2)
        words = words[4:]
    program = words[0]
    if program == "docker":
        return _docker(words)
    if program == "journalctl":
        return _journal(words)
    if program == "kamal":
        return Kamal(tuple(words))
    if program == FLOOD_COMMAND and len(words) == 2 and _COUNT.fullmatch(words[1]):
        return Flood(min(int(words[1]), MAX_FLOOD))
    return _not_found(program)


def to_bytes(text: str) -> bytes:
    """World text as the VM's bytes: raw bytes carried as surrogate escapes go out as they
    were (invalid UTF-8 included); anything else is UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _docker_stamp(at: datetime) -> bytes:
    """docker's RFC3339NanoFixed: always nine fractional digits."""
    moment = at.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}000Z ".encode()


def docker_line(at: datetime, payload: bytes) -> bytes:
    """One `docker logs --timestamps` output line."""
    return _docker_stamp(at) + payload + b"\n"


def boot_id(vm: str) -> str:
    return hashlib.blake2b(vm.encode(), digest_size=16).hexdigest()


def format_cursor(vm: str, cursor: JournalCursor) -> str:
    """A journald-shaped cursor (`s=…;i=…;b=…;m=…;t=…;x=…`) for the sandbox's position."""
    boot = boot_id(vm)
    check = hashlib.blake2b(f"{vm}:{cursor.at_us}:{cursor.ordinal}".encode(), digest_size=8)
    return (
        f"s={boot};i={cursor.ordinal:x};b={boot};m={cursor.at_us:x};"
        f"t={cursor.at_us:x};x={check.hexdigest()}"
    )


def parse_cursor(text: str) -> JournalCursor | None:
    if not CURSOR_PATTERN.fullmatch(text):
        return None
    fields = dict(part.partition("=")[::2] for part in text.split(";"))
    try:
        return JournalCursor(int(fields["t"], 16), int(fields["i"], 16))
    except (KeyError, ValueError):
        return None


def journal_entry(vm: str, at: datetime, ordinal: int, payload: bytes) -> bytes:
    """One `journalctl -o json` line for a vmkit-agent message."""
    at_us = (at - _EPOCH) // _ONE_MICROSECOND
    try:
        message: str | list[int] = payload.decode("utf-8")
    except UnicodeDecodeError:
        message = list(payload)  # journald's form for a message that is not valid UTF-8
    entry = {
        "__CURSOR": format_cursor(vm, JournalCursor(at_us, ordinal)),
        "__REALTIME_TIMESTAMP": str(at_us),
        "_BOOT_ID": boot_id(vm),
        "_HOSTNAME": vm,
        "_SYSTEMD_UNIT": f"{AGENT_UNIT}.service",
        "SYSLOG_IDENTIFIER": AGENT_UNIT,
        "PRIORITY": "6",
        "MESSAGE": message,
    }
    return orjson.dumps(entry) + b"\n"


def flood_chunks(start: datetime, count: int, chunk_lines: int = 4096) -> Iterator[bytes]:
    """`count` kamal-proxy request-log lines with docker timestamps (one µs apart), in large
    chunks: realistic bytes, produced fast enough not to be what a benchmark measures."""
    rng = random.Random(count)
    bodies = [
        orjson.dumps(
            {
                "time": "",
                "level": "INFO",
                "msg": "Request",
                "host": "shop.example.com",
                "path": rng.choice(("/", "/up", "/products", "/api/items", "/cart")),
                "request_id": f"{rng.getrandbits(128):032x}",
                "status": rng.choice((200, 200, 200, 304, 404)),
                "service": "storefront-web-production",
                "duration": rng.randrange(1_000_000, 90_000_000),
                "method": "GET",
                "client_addr": f"198.51.100.{rng.randrange(1, 254)}",
            }
        ).replace(b'"time":""', b'"time":"%s"')
        for _ in range(256)
    ]
    base = (start - _EPOCH) // _ONE_MICROSECOND
    shown_second, prefix = -1, ""
    for first in range(0, count, chunk_lines):
        out: list[bytes] = []
        for number in range(first, min(first + chunk_lines, count)):
            seconds, fraction = divmod(base + number, 1_000_000)
            if seconds != shown_second:
                shown_second = seconds
                prefix = f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"
            stamp = f"{prefix}.{fraction:06d}".encode()
            out.append(stamp + b"000Z " + bodies[number & 255] % (stamp + b"Z",))
        yield b"\n".join(out) + b"\n"
