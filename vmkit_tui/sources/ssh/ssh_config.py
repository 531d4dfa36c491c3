"""What the user's OpenSSH client config says about a target, validated before any socket.

`resolve` reads the config with asyncssh's own parser (the one `asyncssh.connect` applies, so
both see the same values) and turns the target into a `Route`: the real user, HostName and
port, the ProxyJump hops, and every known_hosts file to check. Each value taken from the file
must pass the same ASCII patterns as a host written in vmkit's config, or the connection is
refused with `SshConfigError` naming the file and the option. Host keys are always checked:
`StrictHostKeyChecking` is not read, and `UserKnownHostsFile` only adds files to check.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sources.ssh.errors import SshError
from vmkit_tui.sources.ssh.target import DEFAULT_SSH_CONFIG, SshOptions, SshTarget, parse_target

# OpenSSH's defaults for UserKnownHostsFile and GlobalKnownHostsFile (ssh_config(5)).
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
if TYPE_CHECKING:
    from asyncssh.config import SSHClientConfig

MAX_JUMPS = 8  # hops in one chain, nested ProxyJumps included: a loop in the config ends here


class SshConfigError(SshError):
    """The SSH client config cannot be read, or a value in it is not safe to use."""


@dataclass(frozen=True, slots=True)
class Route:
    """How to reach a target: `target` with its real user, HostName and port; `jumps` to go
    through first (each resolved again when it is opened); the known_hosts files to trust."""

    target: SshTarget
    jumps: tuple[SshTarget, ...]
    known_hosts: tuple[Path, ...]
    config: Path | None


def resolve(target: SshTarget, options: SshOptions) -> Route:
    """The route to `target` under `options.ssh_config` (blocking: it reads the file)."""
    local_user = getpass.getuser()
    path = _config_path(options.ssh_config, target)
    if path is None:
        user = target.user or local_user
        concrete = SshTarget(user, target.host, target.port or 22, target.identity_file)
        return Route(concrete, (), (target.known_hosts_path,), None)
    config = _load(path, target, local_user)

    try:  # SshTarget checks each value against the patterns a vmkit config host must match
        concrete = SshTarget(
            target.user or config.get("User") or local_user,  # type: ignore[arg-type]
            config.get("Hostname", target.host),  # type: ignore[arg-type]
            target.port or config.get("Port", 22),  # type: ignore[arg-type]
            target.identity_file,
        )
    except ValidationError as exc:
        raise SshConfigError(f"{path}: for {target.host}: {exc}", target) from None
    jumps = _jumps(config.get("ProxyJump"), path, target)
    files = [target.known_hosts_path]
    user_files = config.get("UserKnownHostsFile", USER_KNOWN_HOSTS)
    global_files = config.get("GlobalKnownHostsFile", GLOBAL_KNOWN_HOSTS)
    for name in [*user_files, *global_files]:  # type: ignore[misc]
        file = Path(name).expanduser()
        if file not in files:
            files.append(file)
    return Route(concrete, jumps, tuple(files), path)


def _config_path(configured: Path | None, target: SshTarget) -> Path | None:
    """The config file to read, None when there is none. A missing default file is fine (as
    for ssh); a missing file the user named is an error, not silently no config."""
    if configured is None:
        return None
    path = configured.expanduser()
    if path.is_file():
        return path
    if path == DEFAULT_SSH_CONFIG.expanduser() and not path.exists():
        return None
    raise SshConfigError(f"cannot read the SSH config file {path}: no such file", target)


def _load(path: Path, target: SshTarget, local_user: str) -> SSHClientConfig:
    from asyncssh.config import SSHClientConfig

    user = target.user if target.user is not None else ()
    port = target.port if target.port is not None else ()
    try:
        config = SSHClientConfig.load(
            None, [path], False, False, False, local_user, user, target.host, port
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SshConfigError(f"cannot read the SSH config file {path}: {reason}", target) from None
    except ValueError as exc:  # asyncssh's ConfigParseError: "file line N: reason"
        raise SshConfigError(f"SSH config error: {exc}", target) from None
    assert isinstance(config, SSHClientConfig)
    return config


def _jumps(value: object, path: Path, target: SshTarget) -> tuple[SshTarget, ...]:
    """ProxyJump `[user@]host[:port],…` as targets (trusting the same known_hosts file)."""
    if not value:
        return ()
    hops = []
    for hop in str(value).split(","):
        try:
            hops.append(parse_target(hop.strip(), known_hosts=target.known_hosts))
        except ValidationError as exc:
            raise SshConfigError(f"{path}: ProxyJump for {target.host}: {exc}", target) from None
    return tuple(hops)
