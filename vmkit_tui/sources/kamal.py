"""What Kamal's console output says happened (pure), for the `kamal-ssh` rollback strategy.

Kamal's exit status is not enough: `kamal rollback` of a version
that is no longer a stopped container prints "The app version '<v>' is not available as a
container" and exits 0; `Finished all in N seconds` is printed even on failure, *before*
bin/kamal's `ERROR (<class>): <message>` line. So the verdict is read from the lines, and the
exit status only confirms it. bin/kamal prints that line in red even when its output is not a
terminal (`ESC[31mERROR (…): …ESC[0m`), so every line is read without its escapes. With
`--lock-wait`, recent Kamal prints `Deploy lock is held by:` and the lock's details, then
`Retrying in Ns (Ms remaining)...` until it gets the lock or gives up with `ERROR
(Kamal::Cli::LockError): Timed out waiting for deploy lock` (or, for a lock taken by hand,
`Deploy lock held manually, not waiting. …`). Also: the deploy step of a GitHub run (where
Kamal swaps the container, so a cancel may not stop it) and `kamal lock status` output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vmkit_tui.domain.text import plain
from vmkit_tui.sources.github.results import Job, Step

__all__ = [
    "KamalVerdict",
    "LockStatus",
    "kamal_step",
    "kamal_verdict",
    "parse_lock_status",
    "proxy_deploy_target",
]

_NOT_RETAINED = re.compile(r"The app version '([^']*)' is not available as a container")
_FINISHED = re.compile(r"^\s*Finished all in ([0-9]+(?:\.[0-9]+)?) seconds")
_ERROR = re.compile(r"^\s*ERROR \(([^)]*)\):\s*(.*)")  # bin/kamal's last word on a failure
# SSHKit's echo of the proxy step: `Running docker exec kamal-proxy kamal-proxy deploy <service>
# --target="<container id>:<port>" … on <host>` (Kamal 2.1+ hands kamal-proxy the id).
_PROXY_DEPLOY = re.compile(
    r"\bRunning docker exec kamal-proxy kamal-proxy deploy \S+ .*?--target=\"?([0-9a-f]{12,64}):"
)
_NO_LOCK = "There is no deploy lock"
_LOCK_FIELDS = ("Locked by:", "Version:", "Message:")
# The step that runs Kamal ("Deploy with Kamal", "kamal deploy -P …"), not "Install Kamal".
_KAMAL_STEP = re.compile(
    r"(?i)\b(?:deploy|redeploy|roll\s*back|rollback)\b.*\bkamal\b"
    r"|\bkamal\s+(?:deploy|redeploy|rollback)\b"
)


@dataclass(frozen=True, slots=True)
class KamalVerdict:
    """`error`: why it failed, in one line ('' when it succeeded). `not_retained`: all that
    went wrong is that `kamal rollback` found no container of the version on the hosts, so
    nothing changed: deploy its image instead."""

    succeeded: bool
    not_retained: bool = False
    finished_in: float | None = None
    error: str = ""


def kamal_verdict(lines: Iterable[str], exit_status: int | None, failure: str = "") -> KamalVerdict:
    """The outcome of one Kamal invocation from its output. `exit_status` None: unknown (the
    connection broke); `failure`: why the command could not run or finish (SSH trouble)."""
    not_retained = False
    finished: float | None = None
    error = ""
    last = ""
    for raw in lines:
        line = plain(raw)
        if line.strip():
            last = line.strip()
        if _NOT_RETAINED.search(line):
            not_retained = True
        elif (match := _FINISHED.match(line)) is not None:
            finished = float(match.group(1))
        elif not error and (match := _ERROR.match(line)) is not None:
            error = f"ERROR ({match.group(1)}): {match.group(2)}".strip()
    if failure:
        return KamalVerdict(False, False, finished, failure)
    if error:
        return KamalVerdict(False, False, finished, error)
    if not_retained:
        return KamalVerdict(False, True, finished, "the version is not kept as a container")
    if exit_status != 0:
        code = "an unknown status" if exit_status is None else f"status {exit_status}"
        return KamalVerdict(False, False, finished, f"Kamal ended with {code}: {last[:200]}")
    if finished is None:
        return KamalVerdict(False, False, None, "Kamal ended without its 'Finished all in' line")
    return KamalVerdict(True, False, finished)


@dataclass(frozen=True, slots=True)
class LockStatus:
    """`held`: None when the output was not understood; `details`: Kamal's lock lines."""

    held: bool | None
    details: tuple[str, ...] = ()


def parse_lock_status(lines: Iterable[str]) -> LockStatus:
    """`kamal lock status` output: "There is no deploy lock", or only the lock's details file
    (`Locked by: <who> at <when>`, `Version: <v>`, `Message: <m>`); SSHKit lines around them
    (`INFO [id] Running …`, seen with `-v`) are skipped."""
    details: list[str] = []
    for line in lines:
        text = plain(line).strip()
        if text.startswith(_NO_LOCK):
            return LockStatus(False)
        if text.startswith(_LOCK_FIELDS):
            details.append(text)
    if any(line.startswith(_LOCK_FIELDS[0]) for line in details):
        return LockStatus(True, tuple(details))
    return LockStatus(None)


def proxy_deploy_target(line: str) -> str | None:
    """The container id Kamal hands `kamal-proxy deploy` in this line of its output, if any.
    kamal-proxy's own log names only that id; one Kamal invocation deploys one version, so the
    id is that version's container (how the first-healthy moment is attributed without the
    agent)."""
    match = _PROXY_DEPLOY.search(plain(line))
    return match.group(1)[:12] if match else None


def kamal_step(jobs: Sequence[Job]) -> Step | None:
    """The run's Kamal deploy step once it has started (in progress or done), else None:
    from then on Kamal may be swapping the container, which a cancel cannot undo."""
    for job in jobs:
        for step in job.steps:
            ran = step.status == "in_progress" or (
                step.status == "completed" and step.conclusion != "skipped"
            )
            if ran and _KAMAL_STEP.search(step.name):
                return step
    return None
