"""Rollback and deploy-a-SHA: checked, recorded first, then sent.

- Recorded before sent: the new deploy (rollback_of, trigger, actor, what the user was warned
  about) and its RUNNING status are in the history and published before any request leaves,
  so the row shows as Running at once and a crash never loses an action that was sent.
- A rollback is refused while one we started on the environment is still in flight (the
  history says so, which covers other processes too).
- Strategy `github`: one `workflow_dispatch` carrying the SHA and a request id the run's title
  shows; never blindly re-sent (the client looks a lost answer up by that id). Tracking then
  follows the run. Strategy `kamal-ssh`: Kamal on the deploy host over SSH, `kamal rollback`
  when the preflight's facts say the version's container is on every host (or cannot tell),
  `kamal deploy --skip-push --version` when they say it is not (or Kamal says so); the
  verdict comes from Kamal's output, not its exit status; the VM's own logs give the
  first-healthy moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Literal, cast

from vmkit_tui.actions.actor import checked_actor, checked_trigger
from vmkit_tui.actions.base import ActionsBase, checked, created_data
from vmkit_tui.actions.errors import ActionError, ActionRefused, ClaimHeld, UnknownTarget
from vmkit_tui.actions.gather import gather_preflight, resolve_target
from vmkit_tui.actions.kamal_ssh import KamalLog, host_label, reason, run_kamal, ssh_target
from vmkit_tui.actions.preflight import Preflight, in_flight_refusal, live_deploy
from vmkit_tui.config import EnvironmentConfig, RepoConfig, RollbackStrategy
from vmkit_tui.domain.deployments import shared_note
from vmkit_tui.domain.eligibility import Eligibility
from vmkit_tui.domain.event_ids import (
    diagnosis_event_id,
    run_link_id,
    status_event_id,
    undo_note_id,
)
from vmkit_tui.domain.models import (
    Deploy,
    DeployEvent,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    ValidationError,
    is_sha_prefix,
    new_deploy_id,
)
from vmkit_tui.domain.updates import DeployChanged, DeploysPruned
from vmkit_tui.sources.github import GitHubError
from vmkit_tui.sources.ssh.commands import kamal_redeploy, kamal_rollback
from vmkit_tui.store.spool import delete_spool
from vmkit_tui.tracking.job_logs import diagnose_spool
from vmkit_tui.tracking.team import Claimed, ClaimRefused

__all__ = ["Rollbacks"]

Action = Literal["rollback", "deploy"]


class Rollbacks(ActionsBase):
    """The rollback half of `DeployActions`: preflight, rollback, deploy_sha."""

    async def preflight(self, repo: str, environment: str, target: str | None = None) -> Preflight:
        """What rolling `environment` back to `target` (a deploy id or a SHA, full or a unique
        prefix; None: the default, `preflight.default_rollback_target`) would do. Raises `ActionRefused` for a
        target that cannot be resolved; every failed check is a "cannot check" in the result."""
        repo_config, env = self._environment(repo, environment)
        records = await self.history.records(repo, environment)
        preflight, busy = await asyncio.gather(
            gather_preflight(
                self.github, self.now, repo_config, env, records, target, self.eligibility
            ),
            self._busy(records),
        )
        return replace(preflight, in_flight=busy)

    async def rollback(
        self,
        repo: str,
        environment: str,
        target: str | None = None,
        *,
        trigger: Trigger,
        actor: str,
        preflight: Preflight | None = None,
        force: bool = False,
    ) -> DeployRecord:
        """Roll `environment` back to `target` (as for `preflight`; None: the default).

        Returns the new deploy: with `github`, once the dispatch went out (tracking follows the
        run); with `kamal-ssh`, once Kamal has finished. Raises `ActionRefused` (nothing was
        recorded or sent). `preflight`: the one shown to the user (redone if stale or for
        another target); `force`: send despite a forcible refusal (image gone from GHCR)."""
        return await self._start(
            "rollback", repo, environment, target, trigger, actor, preflight, force
        )

    async def deploy_sha(
        self,
        repo: str,
        environment: str,
        sha: str,
        *,
        trigger: Trigger,
        actor: str,
        force: bool = False,
        preflight: Preflight | None = None,
    ) -> DeployRecord:
        """Deploy any commit whose image is in GHCR (beyond the kept history: a full SHA; in it,
        a unique prefix of 7+ hex): the commit must exist on GitHub and its image be present;
        then as `rollback`, with no rollback_of."""
        if not is_sha_prefix(sha):
            raise UnknownTarget(
                f"Deploy what? Not a commit SHA (7 to 40 lowercase hex): {sha!r:.60}"
            )
        return await self._start("deploy", repo, environment, sha, trigger, actor, preflight, force)

    async def _start(
        self,
        action: Action,
        repo: str,
        environment: str,
        target: str | None,
        trigger: Trigger,
        actor: str,
        preflight: Preflight | None,
        force: bool,
    ) -> DeployRecord:
        repo_config, env = self._environment(repo, environment)
        trigger, actor = checked_trigger(trigger), checked_actor(actor)
        async with self._lock(repo, environment):
            if env.rollback is RollbackStrategy.GITHUB and self.github is None:
                raise ActionRefused(
                    "No GitHub token: the rollback dispatches the deploy workflow, which needs "
                    "one (set GH_TOKEN or run `gh auth login`)."
                )
            records = await self.history.records(repo, environment)
            await self._refuse_if_busy(records)
            if preflight is None or not self._fresh(preflight, repo_config, env, records, target):
                preflight = await gather_preflight(
                    self.github, self.now, repo_config, env, records, target, self.eligibility
                )
            check = replace(preflight, require_commit=action == "deploy")
            refusal = check.refusal(force)
            if refusal is not None:
                hint = " (force=True sends it anyway)" if check.refusal(True) is None else ""
                raise ActionRefused(refusal + hint)
            record = await self._record(action, check, trigger, actor, force, env)
            if env.rollback is RollbackStrategy.GITHUB:
                return await self._dispatch(record, check, env)
            self._running.add(record.id)
        try:
            return await self._kamal(record, check, env)
        finally:
            self._running.discard(record.id)

    def _fresh(
        self,
        preflight: Preflight,
        repo_config: RepoConfig,
        env: EnvironmentConfig,
        records: Sequence[DeployRecord],
        target: str | None,
    ) -> bool:
        """Whether a preflight handed in still describes this action (else it is redone):
        same environment, target and live deploy, and recent."""
        if (preflight.repo, preflight.environment) != (repo_config.name, env.name):
            return False
        age = (self.now() - preflight.checked_at).total_seconds()
        live = live_deploy(records)
        if age > self.timing.preflight_max_age or _id(live) != _id(preflight.live):
            return False
        chosen, sha = resolve_target(repo_config.name, env.name, records, live, target)
        return sha == preflight.target.sha and _id(chosen) == _id(preflight.target.deploy)

    async def _refuse_if_busy(self, records: Sequence[DeployRecord]) -> None:
        """Refuse while an action we started on this environment is still in flight."""
        busy = await self._busy(records)
        if busy is not None:
            raise ActionRefused(in_flight_refusal(busy))

    async def _busy(self, records: Sequence[DeployRecord]) -> DeployRecord | None:
        """An action we started on this environment that is still in flight, if any."""
        for record in records:
            if record.status.is_active and _ours(record) and await self._in_flight(record):
                return record
        return None

    async def _in_flight(self, record: DeployRecord) -> bool:
        if record.id in self._running:
            return True
        run_id = record.run_id
        if run_id is None:  # not linked yet: young, or a dispatch that never produced a run
            age = (self.now() - record.deploy.created_at).total_seconds()
            return age < self.timing.stale_after
        if self.github is None:
            return True
        run = await checked(self.github.get_run(record.deploy.repo, run_id))
        return isinstance(run, str) or not run.is_completed  # done: tracking records the end

    async def _record(
        self,
        action: Action,
        check: Preflight,
        trigger: Trigger,
        actor: str,
        force: bool,
        env_config: EnvironmentConfig,
    ) -> DeployRecord:
        """The new deploy and its RUNNING status, in the history and published; with the team
        history on, its GitHub deployment (the claim) is made first: refused if an older
        claim is unfinished, unless `force`, which then says what it overrode."""
        now = self.now()
        target, env = check.target, check.environment
        deploy = Deploy(
            id=new_deploy_id(),
            repo=check.repo,
            environment=env,
            sha=target.sha,
            triggered_by=trigger,
            actor=actor,
            created_at=now,
            rollback_of=target.deploy.id if action == "rollback" and target.deploy else None,
        )
        title = (
            f"Roll back {env} to {target.short_sha}"
            if action == "rollback"
            else f"Deploy {target.short_sha} to {env}"
        )
        data: dict[str, object] = {
            "title": title,
            "action": action,
            "strategy": check.strategy.value,
            "target_sha": target.sha,
            "live_sha": check.live_sha,
            "warnings": list(check.warnings),
        }
        if check.strategy is RollbackStrategy.GITHUB:
            data["request_id"] = _request_id(deploy.id)
        if force and check.blockers:
            data["forced"] = [blocker.message for blocker in check.blockers]
        how = "dispatching the deploy workflow" if "request_id" in data else "running Kamal"
        events = [
            NewEvent(deploy.id, EventKind.CREATED, now, detail=title, data=data),
            NewEvent(
                deploy.id,
                EventKind.STATUS,
                now,
                status=Status.RUNNING,
                detail=f"{title}: {how}",
                event_id=status_event_id(deploy.id, Status.RUNNING),
            ),
        ]
        claimed = await self._claim(deploy, events, env_config, force)
        if claimed is not None and claimed.overridden is not None:
            over = claimed.overridden
            data.setdefault("forced", [])
            cast(list[str], data["forced"]).append(
                f"went past the unfinished deployment #{over.deployment_id} of {over.actor}"
            )
        try:
            created = await self.history.create_deploy(deploy, events)
        except OSError as error:  # disk full, read-only: the record comes first, so stop here
            raise ActionError(
                f"nothing was sent: the deploy could not be recorded in "
                f"{self.history.history.path} ({error.strerror or error})"
            ) from None
        record = created.record
        if claimed is not None and claimed.deployment_id is not None:
            note = shared_note(record, now, claimed.deployment_id, record.events[0].seq, [])
            await self.history.append_events([note])
            record = await self.history.record(record.id)
        self.updates.publish(DeployChanged(record))
        record = await self._share(record)
        if created.pruned:
            for deploy_id in created.pruned:
                await asyncio.to_thread(delete_spool, self.data_dir, deploy_id)
            self.updates.publish(DeploysPruned(created.pruned))
        return record

    async def _claim(
        self, deploy: Deploy, events: Sequence[NewEvent], env: EnvironmentConfig, force: bool
    ) -> Claimed | None:
        if self.team is None:
            return None
        preview = DeployRecord.build(
            deploy, [DeployEvent.from_new(e, seq) for seq, e in enumerate(events, 1)]
        )
        try:
            return await self.team.claim(preview, env, force)
        except ClaimRefused as refused:
            raise ClaimHeld(str(refused)) from None

    def _finished(
        self, record: DeployRecord, status: Status, detail: str, note: str = ""
    ) -> list[NewEvent]:
        """The final STATUS (and a NOTE saying why) of an action that ended here."""
        now = self.now()
        events = [
            NewEvent(
                record.id,
                EventKind.STATUS,
                now,
                status=status,
                detail=detail,
                event_id=status_event_id(record.id, status),
            )
        ]
        if note:
            events.append(NewEvent(record.id, EventKind.NOTE, now, detail=note))
        return events

    def _undo_note(self, record: DeployRecord, check: Preflight) -> list[NewEvent]:
        live = check.live
        if live is None:
            return []
        sha = live.deploy.sha
        return [
            NewEvent(
                record.id,
                EventKind.NOTE,
                self.now(),
                detail=f"To undo, roll back to {sha[:7]} (deploy {live.id}).",
                data={"undo_sha": sha, "undo_deploy": live.id},
                event_id=undo_note_id(record.id),
            )
        ]

    async def _dispatch(
        self, record: DeployRecord, check: Preflight, env: EnvironmentConfig
    ) -> DeployRecord:
        """Strategy github: one workflow_dispatch; the run is linked at once when GitHub says
        which it is (tracking links it by request id otherwise)."""
        assert self.github is not None
        request_id = _request_id(record.id)
        inputs = {"sha": record.deploy.sha, "environment": env.name, "request_id": request_id}
        try:
            sent = await self.github.dispatch(
                record.deploy.repo, env.workflow, env.branch, inputs, request_id
            )
        except (GitHubError, ValidationError, OSError) as error:
            why = reason(error)
            failed = self._finished(
                record,
                Status.FAILED,
                f"dispatch failed: {why}",
                f"The deploy workflow {env.workflow} was not started: {why}",
            )
            return await self._append(record.id, failed)
        now = self.now()
        events: list[NewEvent] = []
        if sent.run_id is not None:
            events.append(
                NewEvent(
                    record.id,
                    EventKind.RUN_LINKED,
                    now,
                    detail=f"GitHub run {sent.run_id}",
                    data={"run_id": sent.run_id, "run_url": sent.html_url or sent.run_url},
                    event_id=run_link_id(record.id),
                )
            )
        else:
            events.append(
                NewEvent(
                    record.id,
                    EventKind.NOTE,
                    now,
                    detail=f"GitHub accepted the dispatch; its run is linked once it shows up "
                    f"(request id {request_id}).",
                )
            )
        record = await self._append(record.id, [*events, *self._undo_note(record, check)])
        if self.after_dispatch is not None:
            self.after_dispatch(record.deploy.repo, env.name)
        return record

    # ---------------------------------------------------------------- kamal-ssh

    async def _kamal(
        self, record: DeployRecord, check: Preflight, env: EnvironmentConfig
    ) -> DeployRecord:
        """Strategy kamal-ssh: `kamal rollback`, then `kamal deploy --skip-push --version` when
        the version is not kept as a container; the VM logs stream into the same spool."""
        assert env.deploy_host is not None  # the config requires it for kamal-ssh
        target = ssh_target(env.deploy_host, env)
        label = host_label(target)
        sha, where = record.deploy.sha, {"destination": env.destination, "workdir": env.kamal_dir}
        watcher = self.vm_watchers.get(record.deploy.repo, env)
        if watcher is not None:
            await watcher.watch(record)
        log = KamalLog(
            self.data_dir,
            record.id,
            label,
            self.updates,
            self.now,
            repo=record.deploy.repo,
            environment=env.name,
            on_target=partial(watcher.kamal_target, record.id) if watcher is not None else None,
        )
        eligibility = check.eligibility
        try:
            verdict = None
            if eligibility.state in (Eligibility.RETAINED, Eligibility.UNKNOWN):
                command = kamal_rollback(sha, **where)
                verdict = await run_kamal(target, command, log, self.ssh_options)
            if verdict is None or verdict.not_retained:
                why = (
                    eligibility.reason
                    if verdict is None
                    else "Kamal says it is not kept as a container on the hosts"
                )
                note = NewEvent(
                    record.id,
                    EventKind.NOTE,
                    self.now(),
                    detail=f"{sha[:7]}: {why}: deploying its image from GHCR "
                    "(kamal deploy --skip-push).",
                )
                await self._append(record.id, [note])
                command = kamal_redeploy(sha, **where)
                verdict = await run_kamal(target, command, log, self.ssh_options)
        except asyncio.CancelledError:
            await log.close()
            await asyncio.shield(self._interrupted(record, label))
            raise
        finally:
            await log.close()
            if watcher is not None:
                await watcher.deploy_finished(record.id)
        if verdict.succeeded:
            took = f" in {verdict.finished_in:g} s" if verdict.finished_in is not None else ""
            events = self._finished(record, Status.SUCCEEDED, f"Kamal on {label} finished{took}")
            events += self._undo_note(record, check)
        else:
            failed = f"Kamal on {label} failed: {verdict.error}"
            events = self._finished(record, Status.FAILED, failed, failed)
            events += await self._diagnosis(record)
        return await self._append(record.id, events)

    async def _diagnosis(self, record: DeployRecord) -> list[NewEvent]:
        """Why a kamal-ssh deploy failed, from its spool (Kamal's output and the VM's)."""
        found = await asyncio.to_thread(diagnose_spool, self.data_dir, record.id)
        if found is None:
            return []
        return [
            NewEvent(
                record.id,
                EventKind.DIAGNOSIS,
                self.now(),
                detail=found.cause,
                data=found.to_data(),
                event_id=diagnosis_event_id(record.id),
            )
        ]

    async def _interrupted(self, record: DeployRecord, host: str) -> None:
        """vmkit-tui stopped mid-Kamal: closing the channel stopped Kamal on the host."""
        note = (
            f"vmkit-tui stopped while Kamal was running on {host}, which stopped Kamal: check "
            "`kamal lock status` there, and roll back or deploy again."
        )
        await self._append(record.id, self._finished(record, Status.FAILED, "interrupted", note))


def _ours(record: DeployRecord) -> bool:
    """Started by DeployActions (here or in another process), not found by tracking."""
    return "action" in created_data(record)


def _id(record: DeployRecord | None) -> str | None:
    return record.id if record is not None else None


def _request_id(deploy_id: str) -> str:
    """What the dispatched run's title carries ("… [vmkit-<deploy id>]") so tracking finds it."""
    return f"vmkit-{deploy_id}"
