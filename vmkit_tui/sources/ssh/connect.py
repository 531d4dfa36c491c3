"""Opening an authenticated connection, with the host key always checked.

The user's OpenSSH client config is honoured as `ssh` does (aliases, HostName, User, Port,
IdentityFile, IdentitiesOnly, IdentityAgent; see `ssh_config`); ProxyJump hops are opened here,
one through the other, each with its host key checked like the target's. The host key is
verified against the target's known_hosts file (default `~/.ssh/known_hosts`) plus the SSH
config's known_hosts files (hashed entries included); an unknown or changed key raises
`HostKeyRefused` naming host:port, the key offered (SHA256 fingerprint) and the file to fix:
nothing is ever auto-accepted.
`connect_timeout` bounds connect + login, keepalives bound a silent link
(`keepalive_interval` × `keepalive_count_max`). What asyncssh or the OS raises becomes one of
the errors in `errors`. asyncssh is imported only when a connection is made.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmkit_tui.sources.ssh.errors import (
    AuthenticationFailed,
    ConnectionDropped,
    ConnectTimeout,
    HostKeyRefused,
    HostUnreachable,
    SshError,
)
from vmkit_tui.sources.ssh.ssh_config import MAX_JUMPS, Route, SshConfigError, resolve
from vmkit_tui.sources.ssh.target import SshOptions, SshTarget

if TYPE_CHECKING:
    import asyncssh


def _connect_error(exc: BaseException, target: SshTarget, options: SshOptions) -> SshError:
    """Turn what asyncssh / the OS raised while connecting into one clear error."""
    import asyncssh

    where = f"{target.user}@{target.address}"
    if isinstance(exc, asyncssh.PermissionDenied):
        if target.identity_file is not None:
            tried = f"the key {target.identity_file}"
        else:
            tried = "the default keys (~/.ssh/id_*)"
            if options.ssh_config is not None:
                tried += f", IdentityFile from {options.ssh_config}"
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


def _read_known_hosts(paths: tuple[Path, ...]) -> asyncssh.SSHKnownHosts:
    """Every file's entries together (a missing file trusts nothing: every host key is then
    refused, with the fingerprint shown)."""
    import asyncssh

    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise SshError(f"cannot read the known_hosts file {path}: {exc.strerror}") from None
    return asyncssh.import_known_hosts("\n".join(texts))


def _host_key_error(
    route: Route, known: asyncssh.SSHKnownHosts, offered: asyncssh.SSHKey | None
) -> HostKeyRefused:
    target, path = route.target, route.known_hosts[0]
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
    if len(route.known_hosts) > 1:
        message += f" (also checked: {', '.join(map(str, route.known_hosts[1:]))})"
    return HostKeyRefused(
        message, target, fingerprint=fingerprint, known_hosts=path, changed=changed
    )


async def connect(
    target: SshTarget, options: SshOptions | None = None
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to `target`, or one of the errors in `errors`."""
    options = options or SshOptions()
    return await _open(target, options, None, 0)


async def _open(
    target: SshTarget,
    options: SshOptions,
    via: asyncssh.SSHClientConnection | None,
    depth: int,
) -> asyncssh.SSHClientConnection:
    """Connect to `target` through `via` (which the new connection then owns and closes), or
    through the target's own ProxyJump hops when `via` is None."""

    try:
        route = await asyncio.to_thread(resolve, target, options)
        if via is None and route.jumps:
            via = await _jump(route, options, depth)
        conn = await _login(target, route, options, via)
    except BaseException:
        if via is not None:
            via.close()
        raise
    if via is not None:
        conn.set_tunnel(via)  # closing the connection closes the hops under it
    return conn


async def _jump(route: Route, options: SshOptions, depth: int) -> asyncssh.SSHClientConnection:
    """The connection to the last ProxyJump hop, each hop opened through the one before; the
    first hop's own ProxyJump applies (as with ssh), the later ones' are replaced."""
    via: asyncssh.SSHClientConnection | None = None
    for hop in route.jumps:
        if depth + 1 > MAX_JUMPS:
            if via is not None:
                via.close()
            raise SshConfigError(
                f"{route.config}: ProxyJump for {route.target.host} goes through more than "
                f"{MAX_JUMPS} hosts (does it loop?)",
                route.target,
            )
        depth += 1
        via = await _open(hop, options, via, depth)
    assert via is not None
    return via


async def _login(
    target: SshTarget,
    route: Route,
    options: SshOptions,
    via: asyncssh.SSHClientConnection | None,
) -> asyncssh.SSHClientConnection:
    import asyncssh

    known = await asyncio.to_thread(_read_known_hosts, route.known_hosts)
    offered: list[asyncssh.SSHKey] = []

    class _Client(asyncssh.SSHClient):
        """Remembers the host key the server offered when it is not trusted."""

        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            offered.append(key)
            return False

    # The host as written, so asyncssh applies the same config entries `resolve` validated;
    # user and port as resolved; host keys and the tunnel always ours (never the config's).
    kwargs: dict[str, Any] = {
        "username": route.target.user,
        "port": route.target.port,
        "config": route.config,
        "known_hosts": known,
        "tunnel": via,
        "client_factory": _Client,
        "connect_timeout": options.connect_timeout,
        "keepalive_interval": options.keepalive_interval,
        "keepalive_count_max": options.keepalive_count_max,
    }
    if not options.use_agent:
        kwargs["agent_path"] = None
    if target.identity_file is not None:
        kwargs["client_keys"] = [str(target.identity_file.expanduser())]
    concrete = route.target
    try:
        return await asyncssh.connect(target.host, **kwargs)
    except asyncssh.HostKeyNotVerifiable:
        raise _host_key_error(route, known, offered[-1] if offered else None) from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise AuthenticationFailed(
            f"cannot use the identity file {target.identity_file}: {exc}. An encrypted key "
            "must be loaded into ssh-agent (ssh-add) and identity_file left unset.",
            concrete,
        ) from None
    except FileNotFoundError as exc:
        raise AuthenticationFailed(
            f"cannot read the identity file {exc.filename or target.identity_file}", concrete
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise _connect_error(exc, concrete, options) from None
