"""Which app versions still have a container on a host: what `kamal app containers` runs,
`docker container ls --all` filtered by Kamal's `service` and `destination` labels, read here
from docker's own output (never Kamal's).

Kamal names an app container `<service>-<role>[-<destination>]-<version>` and labels it
`service`, `role` and `destination`. A container renamed `<version>_replaced_<hex>` (booted
again over itself) no longer answers to the version, as Kamal's own lookup by exact name says,
so it does not count. The service and destination are validated and quoted before they reach
the command line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from vmkit_tui.domain.models import validate_name
from vmkit_tui.sources.ssh.session import run
from vmkit_tui.sources.ssh.target import SshOptions, SshTarget

__all__ = ["FORMAT", "AppContainer", "container_list_command", "list_versions", "parse_containers"]

# docker replaces a literal `\t` in --format with a tab; `.Label` prints "" for a missing label.
FORMAT = r'{{.Names}}\t{{.State}}\t{{.Label "role"}}\t{{.Label "destination"}}'
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, slots=True)
class AppContainer:
    name: str
    state: str  # docker's: running, exited, created, dead, …
    role: str
    destination: str
    version: str


def container_list_command(service: str, destination: str | None) -> str:
    """`docker container ls --all` for one service (and destination), one line per container."""
    argv = ["docker", "container", "ls", "--all", "--no-trunc"]
    argv += ["--filter", f"label=service={validate_name(service, 'service name')}"]
    if destination is not None:
        argv += ["--filter", f"label=destination={validate_name(destination, 'destination')}"]
    argv += ["--format", FORMAT]
    return " ".join(shlex.quote(word) for word in argv)


def parse_containers(
    lines: Iterable[str], service: str, destination: str | None
) -> list[AppContainer]:
    """The app containers of `service` (and `destination`) among docker's output lines; lines
    of another shape (or another destination's containers) are skipped."""
    found = []
    wanted = destination or ""
    for line in lines:
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 4:
            continue
        name, state, role, dest = parts
        if dest != wanted or not role:
            continue
        prefix = "-".join(part for part in (service, role, dest) if part) + "-"
        version = name[len(prefix) :] if name.startswith(prefix) else ""
        if _VERSION.fullmatch(version) and "_replaced_" not in version:
            found.append(AppContainer(name, state, role, dest, version))
    return found


async def list_versions(
    target: SshTarget, service: str, destination: str | None, options: SshOptions
) -> frozenset[str]:
    """The versions with a container (any state) on `target`. Raises `SshError` when the host
    cannot be asked, `RuntimeError` with docker's last words when docker fails."""
    result = await run(target, container_list_command(service, destination), options=options)
    if not result.ok:
        last = result.lines[-1] if result.lines else f"exit status {result.exit_status}"
        raise RuntimeError(f"docker container ls failed: {last[:200]}")
    return frozenset(c.version for c in parse_containers(result.lines, service, destination))
