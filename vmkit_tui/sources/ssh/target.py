"""Where to connect (`SshTarget`, parsed from `user@host[:port]`) and how (`SshOptions`).

Kept free of asyncssh so the config can parse targets at startup without paying its import.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from vmkit_tui.domain.calls import CallLog
from vmkit_tui.domain.models import ValidationError

_USER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_HOST_PATTERN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")


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
    with an explicit identity file so nothing from the developer's ~/.ssh leaks in. `calls`:
    where every command is recorded (the `@` log), when it starts and when it ends."""

    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    use_ssh_config: bool = True
    use_agent: bool = True
    max_line_bytes: int = 64 * 1024
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    calls: CallLog | None = field(default=None, compare=False, repr=False)
