"""Streaming remote commands and logs from the VMs over SSH (asyncssh; no Textual).

Callers write `from vmkit_tui.sources import ssh` and use the names below: `parse_target` /
`SshTarget` / `SshOptions` (target), `connect` (connect), `run` / `stream` (session),
`follow` (follow) and the errors (errors). Remote commands are built in `commands`, VM log
lines are read in `vm_log`.

Host keys are always verified and never auto-accepted; output is split into lines here
(invalid UTF-8 replaced, overlong lines cut); stopping a stream leaves nothing running on the
VM; `follow` reconnects and resumes after a drop. asyncssh is imported only when a connection
is made: importing this package (e.g. to parse a target in the config) stays cheap.
"""

from vmkit_tui.sources.ssh.connect import connect
from vmkit_tui.sources.ssh.errors import (
    AuthenticationFailed,
    ConnectionDropped,
    ConnectTimeout,
    HostKeyRefused,
    HostUnreachable,
    RemoteCommandFailed,
    RemoteCommandNotFound,
    SshError,
)
from vmkit_tui.sources.ssh.follow import VMKIT_SOURCE, follow
from vmkit_tui.sources.ssh.session import CommandResult, run, stream
from vmkit_tui.sources.ssh.target import SshOptions, SshTarget, parse_target

__all__ = [
    "VMKIT_SOURCE",
    "AuthenticationFailed",
    "CommandResult",
    "ConnectTimeout",
    "ConnectionDropped",
    "HostKeyRefused",
    "HostUnreachable",
    "RemoteCommandFailed",
    "RemoteCommandNotFound",
    "SshError",
    "SshOptions",
    "SshTarget",
    "connect",
    "follow",
    "parse_target",
    "run",
    "stream",
]
