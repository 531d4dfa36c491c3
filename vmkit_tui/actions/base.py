"""What every deploy action shares: its patience (`ActionTiming`), its state (`ActionsBase`:
config, history, GitHub client, per-environment locks, VM log watchers) and the lookups and
history writes that rollback and cancel both use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.actions.kamal_ssh import reason
from vmkit_tui.config import Config, EnvironmentConfig, RepoConfig
from vmkit_tui.domain.models import (
    DEPLOY_ID_PATTERN,
    DeployRecord,
    EventKind,
    NewEvent,
    ValidationError,
    utcnow,
    validate_name,
    validate_repo,
)
from vmkit_tui.domain.updates import Broadcaster, DeployChanged
from vmkit_tui.sources import ssh
from vmkit_tui.sources.github import GitHubClient, GitHubError
from vmkit_tui.store.history import AsyncHistory, UnknownDeploy
from vmkit_tui.tracking.eligibility import EligibilityRefresher
from vmkit_tui.tracking.team import TeamShare
from vmkit_tui.tracking.vm_watch import GRACE_SECONDS, VmWatchers

__all__ = ["ActionTiming", "ActionsBase", "checked", "created_data"]

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
EnvKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ActionTiming:
    """Patience (seconds). `sleep` is injectable so tests and benchmarks run on the sandbox
    world's clock; elapsed time is measured with the actions' `now`."""

    stop_wait: float = 60.0  # after a cancel in the Kamal step: wait this long for the run to stop
    poll: float = 2.0  # how often to look while waiting for it
    force_after: float = 30.0  # a cancel not taken this long: force-cancel is sensible
    stale_after: float = 600.0  # an action of ours never linked to a run stops blocking others
    preflight_max_age: float = 300.0  # an older preflight handed to rollback() is redone
    # VM log streaming after a kamal-ssh deploy ends (watchers handed in keep their own grace)
    vm_grace: float = GRACE_SECONDS
    sleep: Sleep = asyncio.sleep


def created_data(record: DeployRecord) -> dict[str, object]:
    for event in record.events:
        if event.kind is EventKind.CREATED:
            return dict(event.data)
    return {}


async def checked(call: Awaitable[T]) -> T | str:
    """The call's result, or why it failed (a check that fails is "cannot check", not a crash)."""
    try:
        return await call
    except (GitHubError, ValidationError, OSError) as error:
        return reason(error)


class ActionsBase:
    """The state of `DeployActions` (see there) and what its rollback and cancel halves share.
    `vm_watchers`: the VM log watchers to use (the service's, shared with tracking); None: the
    actions make their own and stop them in `aclose()`."""

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
        vm_watchers: VmWatchers | None = None,
        eligibility: EligibilityRefresher | None = None,
        team: TeamShare | None = None,
    ) -> None:
        self.config = config
        self.team = team
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
        self._own_watchers = vm_watchers is None
        self.vm_watchers = vm_watchers or VmWatchers(
            history,
            self.data_dir,
            updates,
            now=now,
            ssh_options=self.ssh_options,
            grace=self.timing.vm_grace,
        )
        self.eligibility = eligibility or EligibilityRefresher(
            config, github, self.ssh_options, updates, now
        )

    async def aclose(self) -> None:
        """Stop the VM log streams of kamal-ssh deploys (unless the watchers were handed in)."""
        if self._own_watchers:
            await self.vm_watchers.stop()

    def _lock(self, repo: str, environment: str) -> asyncio.Lock:
        """The environment's action lock; refused at once while an action holds it (a double
        key press never starts two)."""
        lock = self._locks.setdefault((repo, environment), asyncio.Lock())
        if lock.locked():
            raise ActionRefused(
                f"An action on {repo} {environment} is being sent right now: wait for it."
            )
        return lock

    async def _append(self, deploy_id: str, events: Sequence[NewEvent]) -> DeployRecord:
        await self.history.append_events(events)
        record = await self.history.record(deploy_id)
        self.updates.publish(DeployChanged(record))
        return await self._share(record)

    async def _share(self, record: DeployRecord) -> DeployRecord:
        """Write the record's new facts to its GitHub deployment now (the outbox keeps them
        when GitHub cannot be reached; the service retries)."""
        if self.team is not None and not await self.team.flush(record):
            self.updates.publish(DeployChanged(record))  # still marked as not shared
        return record

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
