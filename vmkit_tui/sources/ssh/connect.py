"""Opening an authenticated connection, with the host key always checked.

The host key is verified against the target's known_hosts file (default
`~/.ssh/known_hosts`); an unknown or changed key raises `HostKeyRefused` naming host:port, the
key offered (SHA256 fingerprint) and the file to fix: nothing is ever auto-accepted.
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
    """An authenticated connection to `target`, or one of the errors in `errors`."""
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
