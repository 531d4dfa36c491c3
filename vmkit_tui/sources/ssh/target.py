"""Where to connect (`SshTarget`, parsed from `[user@]host[:port]`) and how (`SshOptions`).

A user or port left out is taken from the SSH client config (`~/.ssh/config`), as `ssh` does;
the host may then be a `Host` alias there. What a valid user, host and port are is
`domain.hosts`'s rule, the same for every host written anywhere.

Kept free of asyncssh: a target is parsed long before any connection is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vmkit_tui.domain.calls import CallLog
from vmkit_tui.domain.hosts import HostSpec, valid_host, valid_user
from vmkit_tui.domain.models import ValidationError

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to connect and how to trust it. `user`/`port` None: from the SSH config, else the
    local user / 22. `known_hosts` None means `~/.ssh/known_hosts` (never "don't check");
    `identity_file` None means the SSH config's keys, the default keys and ssh-agent."""

    user: str | None
    host: str
    port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None

    def __post_init__(self) -> None:
        if self.user is not None and not valid_user(self.user):
            raise ValidationError(f"invalid SSH user name: {self.user!r:.60}")
        if not valid_host(self.host):
            raise ValidationError(f"invalid SSH host: {self.host!r:.80}")
        if self.port is None:
            return
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValidationError(f"invalid SSH port: {self.port!r:.20}")
        if not 1 <= self.port <= 65535:
            raise ValidationError(f"SSH port out of range: {self.port}")

    @property
    def address(self) -> str:
        """`host:port` as people write it (`[v6]:port`; 22 when the port is left out)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port or 22}"

    @property
    def label(self) -> str:
        """The host as log records show it: `host`, or `host:port` off port 22."""
        return self.host if self.port in (None, 22) else self.address

    @property
    def known_hosts_path(self) -> Path:
        return (self.known_hosts or Path("~/.ssh/known_hosts")).expanduser()

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = "" if self.port is None else f":{self.port}"
        return (f"{self.user}@" if self.user else "") + f"{host}{suffix}"


def parse_target(
    text: str, *, identity_file: Path | None = None, known_hosts: Path | None = None
) -> SshTarget:
    """`[user@]host[:port]` (`domain.hosts` reads it, as it does every host written anywhere);
    a bare `host` may be a `Host` alias of the SSH config."""
    spec = HostSpec.parse(text)
    return SshTarget(spec.user, spec.host, spec.port, identity_file, known_hosts)


@dataclass(frozen=True, slots=True)
class SshOptions:
    """Connection and stream behaviour. `ssh_config`: the OpenSSH client config file to honour
    (None: none). Tests pass `ssh_config=None, use_agent=False` with an explicit identity file
    so nothing from the developer's ~/.ssh leaks in. `calls`: where every command is recorded
    (the `@` log), when it starts and when it ends."""

    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    ssh_config: Path | None = DEFAULT_SSH_CONFIG
    use_agent: bool = True
    max_line_bytes: int = 64 * 1024
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    calls: CallLog | None = field(default=None, compare=False, repr=False)
