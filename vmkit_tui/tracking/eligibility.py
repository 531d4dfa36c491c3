"""Keeping every environment's rollback-eligibility facts fresh, off the UI's way.

Per repo, one refresh gathers one GHCR tag listing (conditional requests: an unchanged listing
costs 304s) and, for each of its environments, `docker container ls` on every host over SSH,
all at once. It runs after a deploy of the repo reaches a final status (seen as a
`DeployChanged` on the service's updates, whoever recorded it: tracking, an action, another
process), and otherwise at most once per `interval`. Anything that fails becomes part of the
facts (`unknown`, with the reason), never an exception or a retry loop; each refresh then
publishes `EligibilityChanged` so the frontends redraw just those cells.

These background refreshes spend GitHub's hourly budget like the other background work: while
`RateBudget` says it is low, they leave GHCR unlisted until its reset (the facts say so, and
a version missing on a host is `unknown` meanwhile) and still ask the hosts (SSH costs none of
it). A refresh someone waits for (a rollback's preflight, a CLI or MCP answer) always lists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from datetime import datetime

from vmkit_tui.config import Config, EnvironmentConfig, HostSpec, RepoConfig
from vmkit_tui.domain.eligibility import (
    EligibilityFacts,
    HostContainers,
    RegistryTags,
    RollbackEligibility,
    rollback_eligibility,
)
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.text import sanitise
from vmkit_tui.domain.updates import (
    Broadcaster,
    DeployChanged,
    DeploysPruned,
    EligibilityChanged,
    Update,
)
from vmkit_tui.sources import ssh
from vmkit_tui.sources.github import GitHubClient, GitHubError
from vmkit_tui.sources.ssh.containers import list_versions
from vmkit_tui.tracking.polling import RateBudget

__all__ = ["REFRESH_INTERVAL", "EligibilityRefresher"]

REFRESH_INTERVAL = 60.0  # seconds between refreshes of a repo when no deploy finished
REASON_LIMIT = 200


def _reason(error: BaseException) -> str:
    return sanitise(str(error) or type(error).__name__)[:REASON_LIMIT]


class EligibilityRefresher:
    """The latest facts per (repo, environment) and the loop that refreshes them."""

    def __init__(
        self,
        config: Config,
        github: GitHubClient | None,
        ssh_options: ssh.SshOptions,
        updates: Broadcaster,
        now: Callable[[], datetime],
        *,
        interval: float = REFRESH_INTERVAL,
        budget: RateBudget | None = None,
    ) -> None:
        self.config = config
        self.github = github
        self.ssh_options = ssh_options
        self.updates = updates
        self.now = now
        self.interval = interval
        self.budget = budget or RateBudget()
        self.facts: dict[tuple[str, str], EligibilityFacts] = {}
        self._active: set[str] = set()  # deploys seen before they were final
        self._finished: set[str] = set()  # deploys whose end already brought a refresh
        self._locks: dict[str, asyncio.Lock] = {}

    def eligibility(self, record: DeployRecord) -> RollbackEligibility:
        """The verdict for the record's version from the latest facts (unknown before any)."""
        return self.of(record.deploy.repo, record.deploy.environment, record.deploy.sha)

    def of(self, repo: str, environment: str, sha: str) -> RollbackEligibility:
        return rollback_eligibility(sha, self.facts.get((repo, environment)))

    async def refresh(
        self, repo: str, only: Collection[str] | None = None, *, background: bool = False
    ) -> None:
        """Gather the repo's facts now (its environments, or `only` these) and publish them.
        Concurrent calls for one repo queue up rather than ask twice at once. `background`:
        nobody waits for it, so GHCR is not listed while the hourly budget is low."""
        try:
            repo_config = self.config.repo(repo)
        except KeyError:
            return
        envs = [e for e in repo_config.environments if only is None or e.name in only]
        lock = self._locks.setdefault(repo, asyncio.Lock())
        async with lock:
            registry, hosts = await asyncio.gather(
                self._registry(repo_config, background),
                asyncio.gather(*(self._hosts(env) for env in envs)),
            )
            at = self.now()
            for env, found in zip(envs, hosts, strict=True):
                self.facts[(repo, env.name)] = EligibilityFacts(found, registry, at)
        self.updates.publish(EligibilityChanged(repo, tuple(env.name for env in envs)))

    async def run(self) -> None:
        """Refresh every repo now, then after each finished deploy, else every `interval`."""
        repos = [repo.name for repo in self.config.repos]
        loop = asyncio.get_running_loop()
        due = dict.fromkeys(repos, loop.time())
        started = self.now()
        woke: Update | None = None  # what ended the last wait: older than what is queued
        async with self.updates.subscription() as queue:
            while True:
                pending = {repo for repo, at in due.items() if at <= loop.time()}
                pending |= self._drain(woke, queue, started)
                for repo in pending & due.keys():
                    due[repo] = loop.time() + self.interval
                await asyncio.gather(
                    *(self.refresh(repo, background=True) for repo in pending & due.keys())
                )
                wake = min(due.values()) if due else None
                woke = None
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(wake):
                        woke = await queue.get()

    def _drain(
        self, woke: Update | None, queue: asyncio.Queue[Update], since: datetime
    ) -> set[str]:
        """Repos a deploy of which reached a final status among `woke` and the queued updates,
        taken in the order published: seen running before, or finished after `since` (the past,
        read at start, is not news)."""
        updates = [woke] if woke is not None else []
        while not queue.empty():
            updates.append(queue.get_nowait())
        repos: set[str] = set()
        for update in updates:
            if isinstance(update, DeploysPruned):  # gone from the history: forget them too
                self._active.difference_update(update.deploy_ids)
                self._finished.difference_update(update.deploy_ids)
            if not isinstance(update, DeployChanged):
                continue
            record = update.record
            if not record.status.is_final:
                self._active.add(record.id)
                continue
            finished = record.finished_at
            fresh = record.id in self._active or (finished is not None and finished > since)
            if fresh and record.id not in self._finished:
                self._active.discard(record.id)
                self._finished.add(record.id)
                repos.add(record.deploy.repo)
        return repos

    async def _registry(self, repo: RepoConfig, background: bool) -> RegistryTags:
        if self.github is None:
            return RegistryTags(repo.image, None, "no GitHub token")
        limit = self.github.last_rate_limit
        if background and limit is not None and self.budget.low(limit, self.now()):
            return RegistryTags(
                repo.image,
                None,
                f"not listed while GitHub's hourly budget is low ({limit.remaining} of "
                f"{limit.limit} requests left): deferred until its reset at {limit.reset:%H:%M} UTC",
            )
        try:
            return await self.github.image_tags(repo.image)
        except (GitHubError, OSError) as error:
            return RegistryTags(repo.image, None, _reason(error))

    async def _hosts(self, env: EnvironmentConfig) -> tuple[HostContainers, ...]:
        return tuple(await asyncio.gather(*(self._host(env, host) for host in env.hosts)))

    async def _host(self, env: EnvironmentConfig, spec: HostSpec) -> HostContainers:
        target = ssh.SshTarget(spec.user, spec.host, spec.port, env.identity_file, env.known_hosts)
        try:
            versions = await list_versions(target, env.service, env.destination, self.ssh_options)
        except (ssh.SshError, RuntimeError, OSError, ValueError) as error:
            return HostContainers(str(spec), None, _reason(error))
        return HostContainers(str(spec), versions)
