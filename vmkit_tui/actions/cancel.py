"""Cancel: what a cancel would do (`CancelPreflight`), what it did (`CancelResult`), and the
cancel half of `DeployActions` (`Cancels`).

GitHub stops a cancelled run at its current step, but once Kamal has sent the container swap
to kamal-proxy the swap completes on the VM anyway: the deploy may then succeed or fail on its
own, and a cancelled Kamal may leave its deploy lock held. So the user is told before
confirming whether Kamal has started (the run's steps) and whether the swap has begun
(kamal-proxy's "Deploying" in the deploy's VM log), and force-cancel is offered only when a
cancel has not been taken after a while. CANCEL_REQUESTED is recorded first, then GitHub's
cancel is sent (a 409 just means the run had finished); after a cancel during the Kamal step,
Kamal's deploy lock is checked. The final state is what really happened, as tracking records
it. A kamal-ssh deploy cannot be cancelled once started.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from vmkit_tui.actions.actor import checked_actor, checked_trigger
from vmkit_tui.actions.base import ActionsBase, checked, created_data
from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.actions.kamal_ssh import LockReport, lock_status, reason
from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.event_ids import run_link_id
from vmkit_tui.domain.models import DeployRecord, EventKind, NewEvent, Trigger, ValidationError
from vmkit_tui.sources.github import GitHubError
from vmkit_tui.sources.github.results import CancelOutcome
from vmkit_tui.sources.kamal import kamal_step
from vmkit_tui.sources.ssh.vm_log import PROXY_SOURCE, VmEventKind, parse_record
from vmkit_tui.store.spool import SpoolReader, spool_path

__all__ = ["CancelPreflight", "CancelResult", "Cancels", "swap_seen"]

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


class Cancels(ActionsBase):
    """The cancel half of `DeployActions`: cancel_preflight, cancel."""

    async def cancel_preflight(self, deploy_id: str) -> CancelPreflight:
        """What cancelling this deploy would do (the TUI shows it before confirming)."""
        return await self._cancel_check(await self._deploy(deploy_id))

    async def _cancel_check(self, record: DeployRecord) -> CancelPreflight:
        now = self.now()
        requested = next(
            (e.at for e in record.events if e.kind is EventKind.CANCEL_REQUESTED), None
        )
        force_after = requested + timedelta(seconds=self.timing.force_after) if requested else None

        def refused(why: str) -> CancelPreflight:
            return CancelPreflight(record, why, now)

        status = record.status
        if status.is_final:
            return refused(
                f"Deploy {record.id} already finished ({status.value}): nothing to cancel."
            )
        if created_data(record).get("strategy") == RollbackStrategy.KAMAL_SSH.value:
            return refused(
                f"Deploy {record.id} runs Kamal over SSH and cannot be cancelled once started "
                "(stopping Kamal mid-deploy can leave its lock held and the proxy half "
                "switched): wait for it to end, then roll back if needed."
            )
        if self.github is None:
            return refused("No GitHub token: cancelling a run needs one.")
        if record.run_id is None:
            record = await self._link(record)
        run_id = record.run_id
        if run_id is None:
            return refused(
                f"The GitHub run of deploy {record.id} is not known yet: try again in a few "
                "seconds."
            )
        jobs = await checked(self.github.list_jobs(record.deploy.repo, run_id))
        step = None if isinstance(jobs, str) else kamal_step(jobs)
        return CancelPreflight(
            record,
            None,
            now,
            kamal_step=step.name if step else None,
            swap_seen=await asyncio.to_thread(swap_seen, self.data_dir, record.id),
            steps_problem=jobs if isinstance(jobs, str) else "",
            cancel_requested_at=requested,
            force_after=force_after,
        )

    async def _link(self, record: DeployRecord) -> DeployRecord:
        """A deploy we dispatched whose run is not linked yet: look it up by request id."""
        request_id = created_data(record).get("request_id")
        env = self._configured(record.deploy.repo, record.deploy.environment)
        if not isinstance(request_id, str) or env is None or self.github is None:
            return record
        run = await checked(
            self.github.find_dispatched_run(
                record.deploy.repo, env.workflow, request_id, ref=env.branch
            )
        )
        if run is None or isinstance(run, str):
            return record
        link = NewEvent(
            record.id,
            EventKind.RUN_LINKED,
            self.now(),
            detail=f"GitHub run {run.id}",
            data={"run_id": run.id, "run_url": run.html_url},
            event_id=run_link_id(record.id),
        )
        return await self._append(record.id, [link])

    async def cancel(
        self, deploy_id: str, *, trigger: Trigger, actor: str, force: bool = False
    ) -> CancelResult:
        """Ask GitHub to stop the deploy's run (`force`: force-cancel, which skips `always()`
        steps). CANCEL_REQUESTED is recorded and published first. Raises `ActionRefused` when
        it cannot be cancelled, or a plain cancel was already requested. After a cancel during
        the Kamal step, waits for the run to stop and reports Kamal's deploy lock (also as a
        NOTE)."""
        trigger, actor = checked_trigger(trigger), checked_actor(actor)
        record = await self._deploy(deploy_id)
        repo, environment = record.deploy.repo, record.deploy.environment
        async with self._lock(repo, environment):
            check = await self._cancel_check(record)
            if check.refusal is not None:
                raise ActionRefused(check.refusal)
            if check.cancel_requested_at is not None and not force:
                raise ActionRefused(
                    f"A cancel of deploy {deploy_id} was already requested at "
                    f"{check.cancel_requested_at:%H:%M:%S} UTC; force-cancel it if it does not "
                    "stop."
                )
            record, outcome, message = await self._send_cancel(check, trigger, actor, force)
        report = None
        if outcome is CancelOutcome.REQUESTED and check.kamal_started:
            report = await self._lock_after_cancel(record)
            note = NewEvent(
                record.id,
                EventKind.NOTE,
                self.now(),
                detail=report.message,
                data={"lock_held": report.held, "lock": list(report.details)},
            )
            record = await self._append(record.id, [note])
        retry = outcome is CancelOutcome.REQUESTED and not force
        return CancelResult(
            record,
            outcome,
            force,
            message,
            check.warnings,
            report,
            self.now() + timedelta(seconds=self.timing.force_after) if retry else None,
        )

    async def _send_cancel(
        self, check: CancelPreflight, trigger: Trigger, actor: str, force: bool
    ) -> tuple[DeployRecord, CancelOutcome | None, str]:
        """CANCEL_REQUESTED, then the request; (record, outcome, one sentence for the user)."""
        assert self.github is not None
        record = check.record
        run_id = record.run_id
        assert run_id is not None
        what = "force-cancel" if force else "cancel"
        requested = NewEvent(
            record.id,
            EventKind.CANCEL_REQUESTED,
            self.now(),
            detail=f"{what} requested by {actor} ({trigger.value})",
            data={"trigger": trigger.value, "actor": actor, "force": force},
        )
        record = await self._append(record.id, [requested])
        send = self.github.force_cancel if force else self.github.cancel
        outcome: CancelOutcome | None
        try:
            outcome = await send(record.deploy.repo, run_id)
        except (GitHubError, ValidationError, OSError) as error:
            outcome, message = None, f"GitHub did not take the {what}: {reason(error)}"
        else:
            if outcome is CancelOutcome.REQUESTED:
                message = f"{what.capitalize()} requested: GitHub stops run {run_id} at its step."
                if check.kamal_started:
                    message += " Kamal had already started, so the deploy may complete anyway."
                return record, outcome, message
            message = (
                f"GitHub run {run_id} had already finished: nothing was cancelled, its own "
                "outcome stands."
            )
        note = NewEvent(record.id, EventKind.NOTE, self.now(), detail=message)
        return await self._append(record.id, [note]), outcome, message

    async def _lock_after_cancel(self, record: DeployRecord) -> LockReport:
        """Once the run has stopped: is Kamal's deploy lock still held (a cancelled Kamal
        usually leaves it)?"""
        env = self._configured(record.deploy.repo, record.deploy.environment)
        if env is None:
            return LockReport(None, f"{record.deploy.environment} is not configured any more.")
        if env.deploy_host is not None and not await self._wait_stopped(record):
            return LockReport(
                None,
                f"The run has not stopped after {self.timing.stop_wait:g} s: check `kamal lock "
                f"status` on {env.deploy_host} once it has (force-cancel it if it hangs).",
            )
        return await lock_status(env, self.ssh_options)

    async def _wait_stopped(self, record: DeployRecord) -> bool:
        assert self.github is not None and record.run_id is not None
        give_up = self.now() + timedelta(seconds=self.timing.stop_wait)
        while True:
            run = await checked(self.github.get_run(record.deploy.repo, record.run_id))
            if not isinstance(run, str) and run.is_completed:
                return True
            if self.now() >= give_up:
                return False
            await self.timing.sleep(self.timing.poll)
