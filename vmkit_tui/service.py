"""DeployService: the one place that decides about deploys.

The TUI, the CLI and the MCP server call this and never talk to GitHub, SSH or the history file
themselves. It owns the history (through its async facade, so no event loop ever blocks on the
file lock), the log spools, deploy tracking, and publishes what changes as `updates`.

Tracking runs between `start()` and `stop()` (or `async with service:`): one GitHub watcher per
configured environment (`tracking.EnvironmentTracker`), sharing one client, and for environments
with hosts a `VmWatcher` that the watchers' reports switch on and off (the kamal-ssh actions
stream through the same one). Without a token the service stays read-only on the history and
says how to provide one. The GitHub and SSH stacks are imported only when tracking starts, so
the dashboard paints first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vmkit_tui.config import Config
from vmkit_tui.domain.calls import CallLog
from vmkit_tui.domain.models import DeployRecord, ValidationError, utcnow
from vmkit_tui.domain.updates import Health, SourceHealth, Update
from vmkit_tui.service_view import EnvKey, Overview, ServiceUpdates
from vmkit_tui.store.calls import CallFile
from vmkit_tui.store.history import AsyncHistory

if TYPE_CHECKING:
    from vmkit_tui.actions.deploy_actions import DeployActions
    from vmkit_tui.domain.eligibility import RollbackEligibility
    from vmkit_tui.sources.github import GitHubClient, RateLimited
    from vmkit_tui.sources.ssh import SshOptions
    from vmkit_tui.tracking.eligibility import EligibilityRefresher
    from vmkit_tui.tracking.polling import TrackingTiming
    from vmkit_tui.tracking.team import TeamShare
    from vmkit_tui.tracking.tracker import EnvironmentTracker
    from vmkit_tui.tracking.vm_watch import VmWatcher, VmWatchers


class DeployService:
    """`github`: a client to use instead of building one from the config (its owner closes it,
    and its rate-limit waits are not announced: build it with `on_rate_limit` for that).
    `tracking_timing`: polling intervals and the `sleep` they use (the sandbox's clock in tests
    and the demo); the wall clock is `now`. `ssh_options`: for the VM streams (hermetic ones in
    tests and the demo). `record_calls`: keep the command log of every GitHub request and SSH
    command (`calls`, and a session file under `<data dir>/calls`); off only to measure it.
    `past_logs`: while tracking every environment, fetch in the background the job logs the
    first start did not (`tracking.past_logs`)."""

    def __init__(
        self,
        config: Config,
        history: AsyncHistory,
        data_dir: Path,
        *,
        now: Callable[[], datetime] = utcnow,
        github: GitHubClient | None = None,
        tracking_timing: TrackingTiming | None = None,
        ssh_options: SshOptions | None = None,
        record_calls: bool = True,
        past_logs: bool = True,
    ) -> None:
        self.config = config
        self.history = history
        self.data_dir = data_dir
        self.now = now
        self.updates = ServiceUpdates()
        self._github = github
        self._own_github: GitHubClient | None = None
        self._timing = tracking_timing
        self._ssh_options = ssh_options
        self.past_logs = past_logs
        self.calls = CallLog()
        self.call_file: CallFile | None = None
        if record_calls:
            self.call_file = CallFile(data_dir / "calls")
            self.calls.listen(self.call_file.add)
        self._trackers: dict[EnvKey, EnvironmentTracker] = {}
        self._vm: VmWatchers | None = None  # made when first needed (imports the SSH stack)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._actions: DeployActions | None = None
        self._linked = False  # `kamal_config` files in repos read (see kamal_link)
        self._eligibility: EligibilityRefresher | None = None
        self._team: TeamShare | None = None

    def log_path(self, deploy_id: str) -> Path:
        return self.data_dir / "logs" / f"{deploy_id}.log"

    async def overview(self) -> Overview:
        """One read of the history, grouped by the configured repos and environments.

        Environments that are in the history but no longer configured are left out of the
        navigation, but their records stay in the file."""
        records = await self.history.records()  # newest first already
        overview = Overview.configured(self.config)
        deploys, by_id = overview.deploys, overview._by_id
        for record in records:
            rows = deploys.get((record.deploy.repo, record.deploy.environment))
            if rows is not None:
                rows.append(record)
                by_id[record.id] = record
        return overview

    async def preview(self, repo: str, environment: str) -> Overview:
        """The configured overview with only this environment's deploys, for a first paint:
        only this environment's documents are parsed and checked (`History.preview`). `partial` says so;
        `overview()` must follow, and if it finds the file damaged, nothing of the preview may
        stay on screen."""
        overview = Overview.configured(self.config)
        overview.partial = True
        if (repo, environment) in overview.deploys:
            records = await self.history.preview(repo, environment)
            overview.deploys[(repo, environment)] = records
            overview._by_id.update((record.id, record) for record in records)
        return overview

    async def record(self, deploy_id: str) -> DeployRecord:
        return await self.history.record(deploy_id)

    def health(self) -> list[SourceHealth]:
        """The latest health of every source (GitHub per environment, each SSH host)."""
        return list(self.updates.health.values())

    # ---------------------------------------------------------------- tracking lifecycle

    async def __aenter__(self) -> DeployService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, only: Collection[EnvKey] | None = None) -> None:
        """Start tracking every configured environment, or `only` these (a command that needs
        one environment's state need not catch up on all of them); a no-op when started."""
        if self._started:
            return
        self._started = True
        from vmkit_tui.tracking.polling import RateBudget, TrackingTiming
        from vmkit_tui.tracking.probe import Probes
        from vmkit_tui.tracking.tracker import EnvironmentTracker

        environments = [
            (repo.name, env)
            for repo in self.config.repos
            for env in repo.environments
            if only is None or (repo.name, env.name) in only
        ]
        try:
            github = await self.github_client()
        except ValidationError as error:  # an API URL the client refuses (plain http, …)
            self._announce(Health.ERROR, f"Cannot talk to GitHub: {error}")
            return
        if github is None:
            from vmkit_tui.domain.secret import NoToken, host_of

            self._announce(Health.AUTH, str(NoToken(host_of(self.config.github.api_url))))
            return
        await self._link_kamal(github)
        environments = [
            (repo, self.config.repo(repo).environment(env.name)) for repo, env in environments
        ]
        timing = self._timing or TrackingTiming()
        budget = RateBudget(watchers=len(environments))
        # One look per workflow, shared by the idle watchers of a dashboard or server; a command
        # tracking `only` a few environments for a moment would pay for looks no one shares.
        probes = Probes(github, self.now, timing.probe_age) if only is None else None
        for repo, env in environments:
            key = (repo, env.name)
            if env.hosts:
                self._vm_watchers().get(repo, env)
            tracker = EnvironmentTracker(
                repo,
                env,
                github,
                self.history,
                self.data_dir,
                self,
                now=self.now,
                timing=timing,
                budget=budget,
                probes=probes,
                team=self._team_share(github),
            )
            self._trackers[key] = tracker
            self._tasks.append(asyncio.create_task(tracker.run(), name=f"track {repo} {env.name}"))
        if only is None:  # a one-environment command checks eligibility itself, if it needs it
            refresher = await self.eligibility_refresher()
            self._tasks.append(asyncio.create_task(refresher.run(), name="rollback eligibility"))
        if self.past_logs and only is None and self._trackers:
            from vmkit_tui.tracking.past_logs import PastLogs

            past = PastLogs(self._trackers, self.history, github, now=self.now, timing=timing)
            self._tasks.append(asyncio.create_task(past.run(), name="past logs"))
        if only is None and any(env.kamal_config for _, env in environments):
            self._tasks.append(asyncio.create_task(self._refresh_kamal(github), name="kamal"))

    async def _ensure_linked(self, github: GitHubClient | None) -> None:
        """Link the Kamal configs once, before anything copies `self.config` (tracking, the
        actions, the eligibility refresher); a no-op without a token or when done."""
        if github is not None and not self._linked:
            await self._link_kamal(github)

    async def _link_kamal(self, github: GitHubClient) -> None:
        """Read the repos' Kamal configs the environments point at (once per service; again
        by `_refresh_kamal`) and say which could not be used. Whoever holds the config gets
        the new one: trackers, actions, VM watchers, the eligibility refresher, the team."""
        from vmkit_tui.kamal_link import link_remote

        config, problems = await link_remote(self.config, github)
        self._linked = True
        if config != self.config:
            self.config = config
            for (repo, name), tracker in self._trackers.items():
                tracker.env = config.repo(repo).environment(name)
            if self._actions is not None:
                self._actions.config = config
            if self._eligibility is not None:  # the hosts whose containers it lists
                self._eligibility.config = config
            if self._team is not None:
                self._team.config = config
            for repo_config in config.repos:
                for env in repo_config.environments:
                    watcher = self._vm.find(repo_config.name, env.name) if self._vm else None
                    if watcher is not None:
                        watcher.env = env  # the next deploy streams from the new hosts
        for repo_config in self.config.repos:
            for env in repo_config.environments:
                if env.kamal_config is not None:
                    problem = problems.get((repo_config.name, env.name))
                    health = Health.OK if problem is None else Health.ERROR
                    update = SourceHealth("kamal-config", repo_config.name, env.name, health)
                    self.publish(replace(update, message=problem or ""))

    async def _refresh_kamal(self, github: GitHubClient) -> None:
        from vmkit_tui.kamal_link import REFRESH_S
        from vmkit_tui.tracking.polling import TrackingTiming

        sleep = (self._timing or TrackingTiming()).sleep
        while True:  # a conditional GET per file: free while it is unchanged
            await sleep(REFRESH_S)
            await self._link_kamal(github)

    async def github_client(self) -> GitHubClient | None:
        """The one GitHub client (tracking and actions share its ETag cache and rate budget),
        opened on first use; None without a token. Its requests go to the command log."""
        if self._github is None and self._own_github is None:
            await self._open_github()
        client = self._github or self._own_github
        if client is not None and self.call_file is not None:
            client.calls = self.calls
        return client

    async def _open_github(self) -> GitHubClient | None:
        """A client from the config's token, else one discovered like `gh` does (a subprocess,
        so in a thread); None without a token."""
        from vmkit_tui.domain.secret import discover_token
        from vmkit_tui.sources.github import GitHubClient
        from vmkit_tui.tracking.polling import TrackingTiming

        api_url = self.config.github.api_url
        token = self.config.github.token or await asyncio.to_thread(discover_token, api_url)
        if token is None:
            return None
        self._own_github = GitHubClient(
            api_url,
            token,
            clock=lambda: self.now().timestamp(),
            sleep=(self._timing or TrackingTiming()).sleep,
            on_rate_limit=self._rate_limited,
        )
        return self._own_github

    def _announce(self, health: Health, message: str) -> None:
        """The same GitHub health for every configured environment (nothing will be polled)."""
        for repo in self.config.repos:
            for env in repo.environments:
                self.publish(SourceHealth("github", repo.name, env.name, health, message))

    def _rate_limited(self, error: RateLimited) -> None:
        """The one client waits out a rate limit: every environment's polling waits with it."""
        for tracker in self._trackers.values():
            tracker.rate_limited(error)

    async def stop(self) -> None:
        """Stop tracking and the VM streams; close the client this service built. No task is
        left running."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._trackers.clear()
        if self._vm is not None:
            await self._vm.stop()
        if self._actions is not None:
            await self._actions.aclose()
            self._actions = None
        if self._own_github is not None:
            await self._own_github.aclose()
            self._own_github = None
        if self.call_file is not None:
            await self.call_file.aclose()
        self._started = False

    async def fetch_logs(self, deploy_id: str) -> DeployRecord:
        """The deploy, with its job logs (in its spool) and diagnosis fetched now if it finished
        without them: the past recorded at the first start has none, and a user's first look
        at a failed deploy should say why it failed. Through the environment's watcher when
        tracking, else a watcher made for this one fetch (the CLI); a no-op without a token."""
        from vmkit_tui.tracking.job_logs import wants_job_logs

        record = await self.history.record(deploy_id)
        if not wants_job_logs(record):
            return record
        repo, environment = record.deploy.repo, record.deploy.environment
        tracker = self._trackers.get((repo, environment)) or await self._one_off_tracker(
            repo, environment
        )
        if tracker is None or not await tracker.catch_up(deploy_id):
            return record
        return await self.history.record(deploy_id)

    async def _one_off_tracker(self, repo: str, environment: str) -> EnvironmentTracker | None:
        from vmkit_tui.tracking.tracker import EnvironmentTracker

        try:
            env = self.config.repo(repo).environment(environment)
        except KeyError:  # no longer configured: nothing says which workflow it ran
            return None
        github = await self.github_client()
        if github is None:
            return None
        return EnvironmentTracker(
            repo, env, github, self.history, self.data_dir, self, now=self.now, timing=self._timing
        )

    def track_now(self, repo: str, environment: str) -> None:
        """Poll this environment now rather than at its next interval (after a dispatch)."""
        tracker = self._trackers.get((repo, environment))
        if tracker is not None:
            tracker.wake()

    # ---------------------------------------------------------------- rollback eligibility

    async def eligibility_refresher(self) -> EligibilityRefresher:
        """The one holder of the rollback-eligibility facts (rows, preflights and answers all
        read it); made on first use."""
        if self._eligibility is None:
            from vmkit_tui.tracking.eligibility import EligibilityRefresher

            github = await self.github_client()
            await self._ensure_linked(github)  # the hosts Kamal configs name
            self._eligibility = EligibilityRefresher(
                self.config, github, self.ssh_options(), self.updates, self.now
            )
        return self._eligibility

    def rollback_eligibility(self, record: DeployRecord) -> RollbackEligibility:
        """Whether a rollback to `record` would find its container or image, from the latest
        facts (unknown until the first refresh)."""
        from vmkit_tui.domain.eligibility import rollback_eligibility

        if self._eligibility is None:
            return rollback_eligibility(record.deploy.sha, None)
        return self._eligibility.eligibility(record)

    async def check_eligibility(self, records: Sequence[DeployRecord]) -> None:
        """Gather the facts now for the environments of `records` that have none yet (the CLI
        and MCP answers, which do not run the refresh loop)."""
        refresher = await self.eligibility_refresher()
        wanted: dict[str, set[str]] = {}
        for record in records:
            key = (record.deploy.repo, record.deploy.environment)
            if key not in refresher.facts:
                wanted.setdefault(key[0], set()).add(key[1])
        await asyncio.gather(*(refresher.refresh(repo, envs) for repo, envs in wanted.items()))

    # ---------------------------------------------------------------- actions

    async def actions(self) -> DeployActions:
        """The deploy actions, the one way frontends roll back, deploy a SHA or cancel
        (`(await service.actions()).rollback(...)`); made on first use, sharing this service's
        history, GitHub client, updates and VM watchers (imported then: they pull in httpx)."""
        if self._actions is None:
            from vmkit_tui.actions.deploy_actions import DeployActions

            github = await self.github_client()
            await self._ensure_linked(github)
            self._actions = DeployActions(
                self.config,
                self.history,
                github,
                self.data_dir,
                self.updates,
                now=self.now,
                ssh_options=self.ssh_options(),
                after_dispatch=self.track_now,
                vm_watchers=self._vm_watchers(),
                eligibility=await self.eligibility_refresher(),
                team=self._team_share(github),
            )
        return self._actions

    def _team_share(self, github: GitHubClient | None) -> TeamShare | None:
        """The team history (`[github] share = true`): one per service, on the one client."""
        if self._team is None and github is not None and self.config.github.share:
            from vmkit_tui.tracking.team import TeamShare

            self._team = TeamShare(
                self.config,
                github,
                self.history,
                self.publish,
                now=self.now,
                state_path=self.data_dir / "team.json",
            )
            self.updates.team = self._team
            for repo in self.config.repos:  # remembered from an earlier process: say it now
                for env in repo.environments:
                    self._team.announce(repo.name, env.name)
        return self._team

    @property
    def local_only(self) -> str | None:
        """Why this process does not share its history (None: it shares, or was not asked to)."""
        return self._team.local_only if self._team is not None else None

    def _vm_watchers(self) -> VmWatchers:
        """The VM log watchers, one per environment with hosts, shared by tracking (deploys
        GitHub runs) and the actions (deploys Kamal runs over SSH)."""
        if self._vm is None:
            from vmkit_tui.tracking.vm_watch import VmWatchers

            self._vm = VmWatchers(
                self.history,
                self.data_dir,
                self.updates,
                now=self.now,
                ssh_options=self.ssh_options(),
            )
        return self._vm

    def ssh_options(self) -> SshOptions:
        """The options given (hermetic ones in tests and the demo), else the defaults with the
        config's `[ssh]` settings; with the command log recording every command."""
        if self._ssh_options is None:
            from vmkit_tui.sources.ssh import SshOptions

            self._ssh_options = SshOptions(ssh_config=self.config.ssh.config)
        options = self._ssh_options
        return options if self.call_file is None else replace(options, calls=self.calls)

    # ---------------------------------------------------------------- what trackers report

    def publish(self, update: Update) -> None:
        self.updates.publish(update)

    async def deploy_started(self, record: DeployRecord) -> None:
        """A deploy started (or was found running): stream its VMs' logs."""
        watcher = self._watcher(record)
        if watcher is not None:
            await watcher.watch(record)

    async def deploy_finished(self, record: DeployRecord) -> None:
        """A deploy reached a final status: its VM streams close after their grace period."""
        watcher = self._watcher(record)
        if watcher is not None:
            await watcher.deploy_finished(record.id)

    def _watcher(self, record: DeployRecord) -> VmWatcher | None:
        if self._vm is None:
            return None
        return self._vm.find(record.deploy.repo, record.deploy.environment)
