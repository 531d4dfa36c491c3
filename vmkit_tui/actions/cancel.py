"""What a cancel would do and what it did (the cancel half of `actions`).

GitHub stops a cancelled run at its current step, but once Kamal has sent the container swap
to kamal-proxy the swap completes on the VM anyway (peers-and-kamal.md §0.4): the deploy may
then succeed or fail on its own, and a cancelled Kamal may leave its deploy lock held. So the
user is told before confirming whether Kamal has started (the run's steps) and whether the swap
has begun (kamal-proxy's "Deploying" in the deploy's VM log), and force-cancel is offered only
when a cancel has not been taken after a while.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vmkit_tui.actions.kamal_ssh import LockReport
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.sources.github.results import CancelOutcome
from vmkit_tui.sources.ssh.vm_log import PROXY_SOURCE, VmEventKind, parse_record
from vmkit_tui.store.spool import SpoolReader, spool_path

__all__ = ["CancelPreflight", "CancelResult", "swap_seen"]

_DEPLOYING = re.compile(r'"msg":\s*"Deploying"')  # kamal-proxy starting the container swap


@dataclass(frozen=True, slots=True)
class CancelPreflight:
    """What a cancel of `record` would do, for the confirm dialog. `refusal`: why it cannot be
    cancelled (None: it can). `kamal_step`: the run's Kamal step, once started (from then on
    the swap may complete anyway); `swap_seen`: kamal-proxy already said "Deploying" for it."""

    record: DeployRecord
    refusal: str | None
    checked_at: datetime
    kamal_step: str | None = None
    swap_seen: bool = False
    steps_problem: str = ""  # why the run's steps could not be read
    cancel_requested_at: datetime | None = None
    force_after: datetime | None = None  # from then on force-cancel is sensible

    @property
    def kamal_started(self) -> bool:
        return self.kamal_step is not None or self.swap_seen

    @property
    def force_sensible(self) -> bool:
        """A cancel was requested a while ago and the deploy has still not stopped."""
        return (
            self.force_after is not None
            and self.checked_at >= self.force_after
            and self.record.status.is_active
        )

    @property
    def warnings(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.swap_seen:
            found.append(
                "kamal-proxy is already switching traffic to the new container: the deploy "
                "will most likely complete anyway (succeed or fail on its own)."
            )
        elif self.kamal_step is not None:
            found.append(
                f"Kamal has already started ({self.kamal_step}): if it has sent the container "
                "swap, the deploy may complete anyway (succeed or fail on its own)."
            )
        if self.kamal_started:
            found.append(
                "If it completes you can roll back afterwards. A cancelled Kamal may leave its "
                "deploy lock held: it is checked once the run has stopped."
            )
        if self.steps_problem:
            found.append(
                f"Cannot tell whether Kamal has started ({self.steps_problem}): if it has, the "
                "deploy may complete anyway."
            )
        if self.cancel_requested_at is not None and self.force_after is not None:
            when = (
                "now"
                if self.force_sensible
                else f"if the run has not stopped by {self.force_after:%H:%M:%S} UTC"
            )
            found.append(
                f"A cancel was already requested at {self.cancel_requested_at:%H:%M:%S} UTC: "
                f"force-cancel it {when} (that also skips its cleanup steps)."
            )
        return tuple(found)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel did. `outcome` None: GitHub did not take the request (`message` says why).
    The deploy's final state comes later, from tracking: cancelled, or succeeded / failed if
    the swap completed anyway (the CANCEL_REQUESTED stays in its audit trail)."""

    record: DeployRecord
    outcome: CancelOutcome | None
    forced: bool
    message: str
    warnings: tuple[str, ...] = ()
    lock: LockReport | None = None  # after a cancel during the Kamal step
    force_after: datetime | None = None  # force-cancel is sensible if not stopped by then


def swap_seen(data_dir: Path, deploy_id: str) -> bool:
    """Whether the deploy's spool holds kamal-proxy's "Deploying" (the swap has begun).
    Blocking: a search through the spool file."""
    with SpoolReader(spool_path(data_dir, deploy_id)) as reader:
        index = reader.search(_DEPLOYING)
        while index is not None:
            record = reader.line(index)
            event = parse_record(record) if record.source == PROXY_SOURCE else None
            if event is not None and event.kind is VmEventKind.DEPLOYING:
                return True
            index = reader.search(_DEPLOYING, index + 1)
    return False
