"""The deploy actions: roll back, deploy any SHA, cancel. Checked, recorded first, then sent.

Rules every action follows (DESIGN.md, peers-and-kamal.md §1.3, §1.5, §2, §6):

- One action at a time per environment: a second one while the first is being sent is refused
  at once (a double key press never starts two), and so is a rollback while one we started is
  still in flight there (the history says so, which covers other processes too).
- Recorded before sent: the new deploy (rollback_of, trigger, actor, what the user was warned
  about) and its RUNNING status are in the history and published before any request leaves,
  so the row shows as Running at once and a crash never loses an action that was sent.
- Strategy `github`: one `workflow_dispatch` carrying the SHA and a request id the run's title
  shows; never blindly re-sent (the client looks a lost answer up by that id). Tracking then
  follows the run. Strategy `kamal-ssh`: Kamal on the deploy host over SSH, `kamal rollback`
  first, `kamal deploy --skip-push --version` when the version is not kept as a container; the
  verdict comes from Kamal's output, not its exit status; the VM's own logs give the
  first-healthy moment.
- Cancel: CANCEL_REQUESTED first, then GitHub's cancel (a 409 just means it had finished). Once
  Kamal is swapping the container a cancel may not stop the deploy: the user is told before
  confirming; afterwards Kamal's deploy lock is checked. The final state is what really
  happened, as tracking records it.

No Textual; history I/O through `AsyncHistory`; no token in any message (`secret.redact`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from vmkit_tui.actions.cancel import CancelPreflight, CancelResult, swap_seen
from vmkit_tui.actions.kamal_ssh import (
    KamalLog,
    LockReport,
    host_label,
    lock_status,
    reason,
    run_kamal,
    ssh_target,
)
from vmkit_tui.actions.preflight import (
    MigrationCheck,
    Preflight,
    TargetInfo,
    default_rollback_target,
    live_deploy,
)
from vmkit_tui.config import Config, EnvironmentConfig, RepoConfig, RollbackStrategy
from vmkit_tui.domain.event_ids import (
    diagnosis_event_id,
    run_link_id,
    status_event_id,
    undo_note_id,
)
from vmkit_tui.domain.migrations import migration_files
from vmkit_tui.domain.models import (
    DEPLOY_ID_PATTERN,
    Deploy,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    ValidationError,
    new_deploy_id,
    utcnow,
    validate_name,
    validate_repo,
    validate_sha,
)
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import Broadcaster, DeployChanged, DeploysPruned
from vmkit_tui.sources.github import (
    CancelOutcome,
    Commit,
    GitHubClient,
    GitHubError,
    ImageCheck,
    ImageState,
)
from vmkit_tui.sources.kamal import kamal_step
from vmkit_tui.sources.ssh import ssh
from vmkit_tui.sources.ssh.commands import kamal_redeploy, kamal_rollback
from vmkit_tui.store.history import AsyncHistory, UnknownDeploy
from vmkit_tui.store.spool import delete_spool
from vmkit_tui.tracking.job_logs import diagnose_spool
from vmkit_tui.tracking.vm_watch import GRACE_SECONDS, VmWatcher

__all__ = [
    "ActionError",
    "ActionRefused",
    "ActionTiming",
    "CancelPreflight",
    "CancelResult",
    "DeployActions",
    "LockReport",
]

ACTOR_LIMIT = 100  # characters of an actor's name kept

Sleep = Callable[[float], Awaitable[None]]
Action = Literal["rollback", "deploy"]
T = TypeVar("T")
EnvKey = tuple[str, str]


class ActionError(Exception):
    """An action could not be carried out; `str()` is one sentence for the user."""


class ActionRefused(ActionError):
    """Refused before anything was recorded or sent (bad input, busy, or a failed check)."""


@dataclass(frozen=True, slots=True)
class ActionTiming:
    """Patience (seconds). `sleep` is injectable so tests and benchmarks run on the sandbox
    world's clock; elapsed time is measured with the actions' `now`."""

    stop_wait: float = 60.0  # after a cancel in the Kamal step: wait this long for the run to stop
    poll: float = 2.0  # how often to look while waiting for it
    force_after: float = 30.0  # a cancel not taken this long: force-cancel is sensible
    stale_after: float = 600.0  # an action of ours never linked to a run stops blocking others
    preflight_max_age: float = 300.0  # an older preflight handed to rollback() is redone
    vm_grace: float = GRACE_SECONDS  # VM log streaming after a kamal-ssh deploy ends
    sleep: Sleep = asyncio.sleep


def _created_data(record: DeployRecord) -> dict[str, object]:
    for event in record.events:
        if event.kind is EventKind.CREATED:
            return dict(event.data)
    return {}


def _ours(record: DeployRecord) -> bool:
    """Started by DeployActions (here or in another process), not found by tracking."""
    return "action" in _created_data(record)


class DeployActions:
    """Rollback, deploy-a-SHA and cancel for the configured environments; see the module
    docstring. `github` None: no token (the `github` strategy and cancel are refused, checks
    that need GitHub say "cannot check"). `after_dispatch(repo, environment)` is called once a
    dispatch went out (the service wakes that environment's tracker). Call `aclose()` when
    done: it stops the VM log streams of kamal-ssh deploys."""

    def __init__(
        self,
        config: Config,
        history: AsyncHistory,
        github: GitHubClient | None,
        data_dir: Path,
        updates: Broadcaster,
        *,
        now: Callable[[], datetime] = utcnow,
        ssh_options: ssh.SshOptions | None = None,
        timing: ActionTiming | None = None,
        after_dispatch: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self.github = github
        self.data_dir = Path(data_dir)
        self.updates = updates
        self.now = now
        self.ssh_options = ssh_options or ssh.SshOptions()
        self.timing = timing or ActionTiming()
        self.after_dispatch = after_dispatch
        self._locks: dict[EnvKey, asyncio.Lock] = {}
        self._running: set[str] = set()  # kamal-ssh deploys whose Kamal runs in this process
        self._watchers: dict[EnvKey, VmWatcher] = {}

    async def aclose(self) -> None:
        watchers = list(self._watchers.values())
        self._watchers.clear()
        await asyncio.gather(*(watcher.stop() for watcher in watchers))

    # ---------------------------------------------------------------- preflight

    async def preflight(self, repo: str, environment: str, target: str | None = None) -> Preflight:
        """What rolling `environment` back to `target` (a deploy id or a full SHA; None: the
        last succeeded deploy before the live one) would do. Raises `ActionRefused` for a
        target that cannot be resolved; every failed check is a "cannot check" in the result."""
        repo_config, env = self._environment(repo, environment)
        records = await self.history.records(repo, environment)
        return await self._preflight(repo_config, env, records, target)

    async def _preflight(
        self,
        repo_config: RepoConfig,
        env: EnvironmentConfig,
        records: Sequence[DeployRecord],
        target: str | None,
    ) -> Preflight:
        live = live_deploy(records)
        chosen, sha = self._resolve(repo_config.name, env.name, records, live, target)
        live_sha = live.deploy.sha if live is not None else None
        commit, image, migrations = await asyncio.gather(
            self._commit(repo_config.name, sha),
            self._image(repo_config.image, sha),
            self._migrations(repo_config.name, env.name, sha, live_sha),
        )
        if isinstance(commit, str):
            found: bool | None = None
            message, problem = chosen.title if chosen else "", commit
        else:
            found, problem = commit is not None, ""
            first = commit.message.splitlines()[0] if commit and commit.message else ""
            message = first or (chosen.title if chosen else "")
        return Preflight(
            repo=repo_config.name,
            environment=env.name,
            strategy=env.rollback,
            image=repo_config.image,
            target=TargetInfo(sha, chosen, message, found, problem),
            live=live,
            image_check=image,
            migrations=migrations,
            checked_at=self.now(),
            active=next((r for r in newest_first(records) if r.status.is_active), None),
        )

    def _resolve(
        self,
        repo: str,
        environment: str,
        records: Sequence[DeployRecord],
        live: DeployRecord | None,
        target: str | None,
    ) -> tuple[DeployRecord | None, str]:
        """The target as (its known deploy or None, its SHA)."""
        if target and DEPLOY_ID_PATTERN.fullmatch(target):
            chosen = next((r for r in records if r.id == target), None)
            if chosen is None:
                raise ActionRefused(f"{repo} {environment} has no deploy {target}.")
            if live is None or chosen.id != live.id:
                return chosen, chosen.deploy.sha
        elif target:
            try:
                sha = validate_sha(target)
            except ValidationError as error:
                raise ActionRefused(f"Roll back to what? {error}") from None
            same = [r for r in newest_first(records) if r.deploy.sha == sha]
            good = [r for r in same if r.status is Status.SUCCEEDED]
            return next(iter(good or same), None), sha
        chosen = default_rollback_target(records)
        if chosen is None:
            raise ActionRefused(
                f"{repo} {environment} has no succeeded deploy before the live one to roll back "
                "to: name a deploy or a full commit SHA."
            )
        return chosen, chosen.deploy.sha

    async def _commit(self, repo: str, sha: str) -> Commit | str | None:
        """The commit, None if GitHub does not have it, or why it could not be checked."""
        if self.github is None:
            return "no GitHub token"
        return await _checked(self.github.get_commit(repo, sha))

    async def _image(self, image: str, sha: str) -> ImageCheck:
        if self.github is None:
            return ImageCheck(ImageState.CANNOT_CHECK, "no GitHub token")
        found = await _checked(self.github.image_tags_present(image, sha))
        return ImageCheck(ImageState.CANNOT_CHECK, found) if isinstance(found, str) else found

    async def _migrations(
        self, repo: str, environment: str, sha: str, live_sha: str | None
    ) -> MigrationCheck:
        if live_sha is None:
            return MigrationCheck(
                cannot_check=f"no deploy of {environment} in the history succeeded, so the "
                "live version is unknown"
            )
        if live_sha == sha:
            return MigrationCheck(compared="identical")
        if self.github is None:
            return MigrationCheck(cannot_check="no GitHub token")
        found = await _checked(self.github.compare(repo, sha, live_sha))
        if isinstance(found, str):
            return MigrationCheck(cannot_check=f"GitHub's compare failed: {found}")
        return MigrationCheck(
            files=tuple(migration_files(found.files)),
            compared=found.status,
            truncated=found.files_truncated,
        )

    # ---------------------------------------------------------------- rollback / deploy

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
        """Roll `environment` back to `target` (deploy id, full SHA, or None for the default).

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
        """Deploy any commit whose image is in GHCR (beyond the kept history): the commit must
        exist on GitHub and its image be present; then as `rollback`, with no rollback_of."""
        try:
            validate_sha(sha)
        except ValidationError as error:
            raise ActionRefused(f"Deploy what? {error}") from None
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
        trigger, actor = _trigger(trigger), _actor(actor)
        lock = self._locks.setdefault((repo, environment), asyncio.Lock())
        if lock.locked():
            raise ActionRefused(_busy(repo, environment))
        async with lock:
            if env.rollback is RollbackStrategy.GITHUB and self.github is None:
                raise ActionRefused(
                    "No GitHub token: the rollback dispatches the deploy workflow, which needs "
                    "one (set GH_TOKEN or run `gh auth login`)."
                )
            records = await self.history.records(repo, environment)
            await self._refuse_if_busy(records)
            if preflight is None or not self._fresh(preflight, repo_config, env, records, target):
                preflight = await self._preflight(repo_config, env, records, target)
            check = replace(preflight, require_commit=action == "deploy")
            refusal = check.refusal(force)
            if refusal is not None:
                hint = " (force=True sends it anyway)" if check.refusal(True) is None else ""
                raise ActionRefused(refusal + hint)
            record = await self._record(action, check, trigger, actor, force)
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
        chosen, sha = self._resolve(repo_config.name, env.name, records, live, target)
        return sha == preflight.target.sha and _id(chosen) == _id(preflight.target.deploy)

    async def _refuse_if_busy(self, records: Sequence[DeployRecord]) -> None:
        """Refuse while an action we started on this environment is still in flight."""
        for record in records:
            if not record.status.is_active or not _ours(record):
                continue
            if await self._in_flight(record):
                data = _created_data(record)
                raise ActionRefused(
                    f"{data.get('title') or 'A deploy'} (deploy {record.id}, "
                    f"{record.status.value}, by {record.deploy.actor}) is still in flight: wait "
                    "for it to finish, or cancel it first."
                )

    async def _in_flight(self, record: DeployRecord) -> bool:
        if record.id in self._running:
            return True
        run_id = record.run_id
        if run_id is None:  # not linked yet: young, or a dispatch that never produced a run
            age = (self.now() - record.deploy.created_at).total_seconds()
            return age < self.timing.stale_after
        if self.github is None:
            return True
        run = await _checked(self.github.get_run(record.deploy.repo, run_id))
        return isinstance(run, str) or not run.is_completed  # done: tracking records the end

    async def _record(
        self, action: Action, check: Preflight, trigger: Trigger, actor: str, force: bool
    ) -> DeployRecord:
        """The new deploy and its RUNNING status, in the history and published."""
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
        created = await self.history.create_deploy(deploy, events)
        self.updates.publish(DeployChanged(created.record))
        if created.pruned:
            for deploy_id in created.pruned:
                await asyncio.to_thread(delete_spool, self.data_dir, deploy_id)
            self.updates.publish(DeploysPruned(created.pruned))
        return created.record

    async def _append(self, deploy_id: str, events: Sequence[NewEvent]) -> DeployRecord:
        await self.history.append_events(events)
        record = await self.history.record(deploy_id)
        self.updates.publish(DeployChanged(record))
        return record

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
            events = self._finished(
                record,
                Status.FAILED,
                f"dispatch failed: {why}",
                f"The deploy workflow {env.workflow} was not started: {why}",
            )
            return await self._append(record.id, events)
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
        sha, destination = record.deploy.sha, env.destination
        watcher = self._watcher(record.deploy.repo, env)
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
        )
        try:
            command = kamal_rollback(sha, destination=destination)
            verdict = await run_kamal(target, command, log, self.ssh_options)
            if verdict.not_retained:
                note = NewEvent(
                    record.id,
                    EventKind.NOTE,
                    self.now(),
                    detail=f"{sha[:7]} is not kept as a container on the hosts: deploying its "
                    "image from GHCR instead (kamal deploy --skip-push).",
                )
                await self._append(record.id, [note])
                command = kamal_redeploy(sha, destination=destination)
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

    def _watcher(self, repo: str, env: EnvironmentConfig) -> VmWatcher | None:
        """The environment's VM log streams (kamal-proxy's lines give the first-healthy
        moment), or None without hosts."""
        if not env.hosts:
            return None
        key = (repo, env.name)
        watcher = self._watchers.get(key)
        if watcher is None:
            watcher = self._watchers[key] = VmWatcher(
                repo,
                env,
                self.history,
                self.data_dir,
                self.updates,
                now=self.now,
                ssh_options=self.ssh_options,
                grace=self.timing.vm_grace,
            )
        return watcher

    # ---------------------------------------------------------------- cancel

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
        if _created_data(record).get("strategy") == RollbackStrategy.KAMAL_SSH.value:
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
        jobs = await _checked(self.github.list_jobs(record.deploy.repo, run_id))
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
        request_id = _created_data(record).get("request_id")
        env = self._configured(record.deploy.repo, record.deploy.environment)
        if not isinstance(request_id, str) or env is None or self.github is None:
            return record
        run = await _checked(
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
        trigger, actor = _trigger(trigger), _actor(actor)
        record = await self._deploy(deploy_id)
        repo, environment = record.deploy.repo, record.deploy.environment
        lock = self._locks.setdefault((repo, environment), asyncio.Lock())
        if lock.locked():
            raise ActionRefused(_busy(repo, environment))
        async with lock:
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
            run = await _checked(self.github.get_run(record.deploy.repo, record.run_id))
            if not isinstance(run, str) and run.is_completed:
                return True
            if self.now() >= give_up:
                return False
            await self.timing.sleep(self.timing.poll)

    # ---------------------------------------------------------------- lookups

    def _environment(self, repo: str, environment: str) -> tuple[RepoConfig, EnvironmentConfig]:
        try:
            validate_repo(repo)
            validate_name(environment, "environment name")
            repo_config = self.config.repo(repo)
            return repo_config, repo_config.environment(environment)
        except ValidationError as error:
            raise ActionRefused(str(error)) from None
        except KeyError:
            raise ActionRefused(f"{repo} {environment} is not in the configuration.") from None

    def _configured(self, repo: str, environment: str) -> EnvironmentConfig | None:
        try:
            return self.config.repo(repo).environment(environment)
        except KeyError:
            return None

    async def _deploy(self, deploy_id: str) -> DeployRecord:
        if not isinstance(deploy_id, str) or not DEPLOY_ID_PATTERN.fullmatch(deploy_id):
            raise ActionRefused(f"Not a deploy id: {deploy_id!r:.40}")
        try:
            return await self.history.record(deploy_id)
        except UnknownDeploy:
            raise ActionRefused(f"No deploy {deploy_id} in the history.") from None


async def _checked(call: Awaitable[T]) -> T | str:
    """The call's result, or why it failed (a check that fails is "cannot check", not a crash)."""
    try:
        return await call
    except (GitHubError, ValidationError, OSError) as error:
        return reason(error)


def _id(record: DeployRecord | None) -> str | None:
    return record.id if record is not None else None


def _busy(repo: str, environment: str) -> str:
    return f"An action on {repo} {environment} is being sent right now: wait for it."


def _request_id(deploy_id: str) -> str:
    """What the dispatched run's title carries ("… [vmkit-<deploy id>]") so tracking finds it."""
    return f"vmkit-{deploy_id}"


def _trigger(trigger: Trigger | str) -> Trigger:
    try:
        return Trigger(trigger)
    except ValueError:
        raise ActionRefused(f"Unknown trigger: {trigger!r:.20}") from None


def _actor(actor: str) -> str:
    text = plain(actor).strip() if isinstance(actor, str) else ""
    if not text:
        raise ActionRefused("Who is acting? The actor must be named.")
    return text[:ACTOR_LIMIT]
