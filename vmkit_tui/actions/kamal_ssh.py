"""Kamal on an environment's deploy host over SSH (the `kamal-ssh` rollback strategy).

`run_kamal` runs one Kamal command and streams its console output into the deploy's spool as
it arrives (`KamalLog`: batched writes, each announced with `LogGrew`), then reads the verdict
from the output (`kamal_verdict`). `lock_status` asks `kamal lock status` whether the deploy
lock is held (a cancelled Kamal usually leaves it). Commands come from `sources.ssh.commands`
(validated and quoted); host keys are verified by `ssh`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vmkit_tui.config import EnvironmentConfig, HostSpec
from vmkit_tui.domain.text import sanitise
from vmkit_tui.domain.updates import Broadcaster
from vmkit_tui.sources import ssh
from vmkit_tui.sources.kamal import (
    KamalVerdict,
    kamal_verdict,
    parse_lock_status,
    proxy_deploy_target,
)
from vmkit_tui.sources.ssh.commands import kamal_lock_status
from vmkit_tui.store.spool import LogRecord
from vmkit_tui.tracking.log_writer import SpoolLog

__all__ = [
    "KAMAL_SOURCE",
    "KamalLog",
    "LockReport",
    "host_label",
    "lock_status",
    "reason",
    "run_kamal",
    "ssh_target",
]

KAMAL_SOURCE = "kamal"  # spool source of Kamal's console output
REASON_LIMIT = 300  # characters of an error kept in messages and events


def reason(error: BaseException) -> str:
    """An error as one safe line: no token, no control sequences, bounded."""
    return sanitise(str(error) or type(error).__name__)[:REASON_LIMIT]


def ssh_target(host: HostSpec, env: EnvironmentConfig) -> ssh.SshTarget:
    return ssh.SshTarget(host.user, host.host, host.port, env.identity_file, env.known_hosts)


def host_label(target: ssh.SshTarget) -> str:
    """The host as log records show it (`host`, or `host:port` off port 22), as vm_watch does."""
    return target.label


class KamalLog(SpoolLog):
    """One deploy's Kamal output into its spool, batched (at most 20 writes and LogGrew updates
    a second), stamped with `now` (the lines carry no time of their own). `on_target` hears
    each container id Kamal hands `kamal-proxy deploy` (the VM watcher ties it to the deploy's
    version: kamal-proxy's log names only the id)."""

    def __init__(
        self,
        data_dir: Path,
        deploy_id: str,
        host: str,
        updates: Broadcaster,
        now: Callable[[], datetime],
        *,
        repo: str,
        environment: str,
        on_target: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(data_dir, deploy_id, updates, repo=repo, environment=environment)
        self.host = host
        self.now = now
        self.on_target = on_target

    def add(self, text: str, *, own: bool = False) -> None:
        """A line of Kamal's, or (`own`) one of vmkit-tui's saying what went wrong."""
        source = ssh.VMKIT_SOURCE if own else KAMAL_SOURCE
        self.append(LogRecord(self.now(), self.host, source, text))
        if not own and self.on_target is not None and (found := proxy_deploy_target(text)):
            self.on_target(found)


async def run_kamal(
    target: ssh.SshTarget, command: str, log: KamalLog, options: ssh.SshOptions
) -> KamalVerdict:
    """Run one Kamal command on `target`, its output into `log` as it arrives; the verdict
    comes from the output (never raises for SSH trouble: that is a failed verdict, also
    written to the log)."""
    lines: list[str] = []
    status: int | None = 0
    failure = ""
    records = ssh.stream(target, command, KAMAL_SOURCE, options=options)
    try:
        async for record in records:
            lines.append(record.text)
            log.add(record.text)
    except ssh.RemoteCommandNotFound as error:
        failure = f"Kamal is not installed on {target} (or not in PATH): {reason(error)}"
    except ssh.RemoteCommandFailed as error:
        status = error.exit_status  # Kamal exits 1 on failure: its output says why
    except ssh.SshError as error:
        failure = reason(error)
    finally:
        await records.aclose()
    if failure:
        log.add(failure, own=True)
    return kamal_verdict(lines, status, failure)


@dataclass(frozen=True, slots=True)
class LockReport:
    """Kamal's deploy lock: `held` None when it could not be checked; `details` are Kamal's
    own lines (`Locked by: …`, `Version: …`, `Message: …`), remote text."""

    held: bool | None
    message: str
    details: tuple[str, ...] = ()


async def lock_status(env: EnvironmentConfig, options: ssh.SshOptions) -> LockReport:
    """`kamal lock status` on the environment's deploy host, in words with the way out."""
    release = "`kamal lock release" + (f" -d {env.destination}`" if env.destination else "`")
    if env.deploy_host is None:
        return LockReport(
            None,
            "A cancelled Kamal may have left its deploy lock held: check with `kamal lock "
            f"status` where you run Kamal and, if nobody is deploying, {release}.",
        )
    host = str(env.deploy_host)
    command = kamal_lock_status(destination=env.destination, workdir=env.kamal_dir)
    try:
        result = await ssh.run(ssh_target(env.deploy_host, env), command, options=options)
    except ssh.SshError as error:
        return LockReport(None, f"Cannot check Kamal's deploy lock on {host}: {reason(error)}")
    found = parse_lock_status(result.lines)
    details = tuple(sanitise(line) for line in found.details)
    if found.held:
        return LockReport(
            True,
            f"Kamal's deploy lock is still held on {host} ({details[0]}): if nobody is "
            f"deploying, release it with {release}.",
            details,
        )
    if found.held is False:
        return LockReport(False, f"No Kamal deploy lock is held on {host}.")
    last = sanitise(result.lines[-1])[:200] if result.lines else "(no output)"
    return LockReport(None, f"`kamal lock status` on {host} said something unexpected: {last}")
