"""The errors of the SSH client. Each `str()` is a message for a human; the attributes say
what a caller needs to decide (retry a drop or an unreachable host, never a trust or auth
failure)."""

from __future__ import annotations

from pathlib import Path

from vmkit_tui.sources.ssh.target import SshTarget


class SshError(Exception):
    """Base of every error the SSH client raises; `str()` is a message for humans."""

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
