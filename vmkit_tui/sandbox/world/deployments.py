"""GitHub Deployments in the world: deployments, their append-only statuses, and the
environments that deployments create, with GitHub's rules.

Ids come from world-wide counters that only grow (like GitHub's), so a newer deployment always
has a larger id. A deployment is never edited, only given statuses; a status may move it to
another environment (`original_environment` keeps the first). A `success` status with
`auto_inactive` (the default) adds an `inactive` status to every earlier deployment of the same
environment whose latest state is `success`, except transient ones. An environment exists from
the first deployment to it.

Actions runs create deployments too, as GitHub does for a job with `environment:`: the deploy
job of each attempt gets one (creator `github-actions[bot]`, task `deploy`, ref = the run's
branch, sha = its head SHA, empty payload) with statuses following the job: `queued` when it is
created, `in_progress` when a runner takes it, then `success` or `failure` (GitHub has no
cancelled state: a cancelled job ends `failure`). They are derived from the run's timeline and
made real in time order whenever deployments are read or written (`_sync_deployments`), so
ids stay in creation order across API-made and Actions-made deployments.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vmkit_tui.sandbox.world.base import WorldError, _node_id
from vmkit_tui.sandbox.world.github import GitHub, Repo, Run
from vmkit_tui.sandbox.world.scenarios import JobPlan, RunPlan

ACTIONS_BOT = "github-actions[bot]"
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
_FINAL = {"success": "success", "failure": "failure", "cancelled": "failure"}


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    id: int
    node_id: str
    state: str
    creator: str
    description: str
    environment: str
    log_url: str  # also the status's `target_url`; "" for none
    environment_url: str
    created_at: datetime
    run_id: int | None = None  # made by Actions for this run: its URL is the log URL


@dataclass(eq=False, slots=True)
class Deployment:
    id: int
    node_id: str
    repo: Repo
    sha: str
    ref: str
    task: str
    payload: dict[str, Any] | str
    original_environment: str
    environment: str
    description: str | None
    creator: str
    created_at: datetime
    updated_at: datetime
    transient_environment: bool
    production_environment: bool
    statuses: list[DeploymentStatus] = field(default_factory=list)  # oldest first
    run_id: int | None = None  # created by Actions for this run's deploy job
    run_attempt: int | None = None

    @property
    def state(self) -> str | None:
        """The latest status's state (None: no status yet)."""
        return self.statuses[-1].state if self.statuses else None


@dataclass(frozen=True, slots=True)
class GitHubEnvironment:
    """An environment as GitHub's Environments page lists it (not the VM side)."""

    id: int
    node_id: str
    name: str
    created_at: datetime


@dataclass(slots=True)
class _ActionsCursor:
    """How far one run attempt's deployment has been made real."""

    deployment: Deployment | None = None
    applied: int = 0  # events of `_actions_events` already applied


class Deployments(GitHub):
    """Part of `World`: GitHub's deployments, deployment statuses and environments (built on
    the repos, commits and runs of `GitHub`)."""

    _deployments: dict[int, Deployment]
    _deployment_ids: Iterator[int]
    _status_ids: Iterator[int]
    _gh_envs: dict[tuple[str, str], GitHubEnvironment]
    _actions_cursors: dict[tuple[int, int], _ActionsCursor]

    # ------------------------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------------------------

    def deployments(
        self,
        repo: Repo | str,
        *,
        sha: str | None = None,
        ref: str | None = None,
        task: str | None = None,
        environment: str | None = None,
    ) -> list[Deployment]:
        """The repo's deployments, newest first, filtered as the list endpoint filters."""
        self._sync_deployments()
        target = self._repo(repo)
        found = [
            item
            for item in self._deployments.values()
            if item.repo is target
            and sha in (None, item.sha)
            and ref in (None, item.ref)
            and task in (None, item.task)
            and environment in (None, item.environment)
        ]
        found.sort(key=lambda item: item.id, reverse=True)
        return found

    def deployment(self, repo: Repo | str, deployment_id: int) -> Deployment | None:
        self._sync_deployments()
        found = self._deployments.get(deployment_id)
        return found if found is not None and found.repo is self._repo(repo) else None

    def deployment_statuses(self, deployment: Deployment) -> list[DeploymentStatus]:
        """Newest first, as GitHub lists them."""
        self._sync_deployments()
        return list(reversed(deployment.statuses))

    def github_environments(self, repo: Repo | str) -> list[GitHubEnvironment]:
        """The environments deployments have created, by name."""
        self._sync_deployments()
        name = self._repo(repo).full_name
        return sorted(
            (env for (owner, _), env in self._gh_envs.items() if owner == name),
            key=lambda env: env.name,
        )

    def github_environment(self, repo: Repo | str, name: str) -> GitHubEnvironment | None:
        self._sync_deployments()
        return self._gh_envs.get((self._repo(repo).full_name, name))

    # ------------------------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------------------------

    def create_deployment(
        self,
        repo: Repo | str,
        ref: str,
        *,
        creator: str,
        task: str = "deploy",
        environment: str = "production",
        payload: Mapping[str, Any] | str = "",
        description: str | None = "",
        transient_environment: bool = False,
        production_environment: bool | None = None,
    ) -> Deployment:
        """A new deployment of `ref` (branch or SHA); `WorldError` with GitHub's message for a
        ref the repo does not have."""
        self._sync_deployments()
        target = self._repo(repo)
        commit = self.commit(target, ref)
        if commit is None:
            raise WorldError(f"No ref found for: {ref}")
        return self._new_deployment(
            target,
            sha=commit.sha,
            ref=ref,
            task=task,
            environment=environment,
            payload=dict(payload) if isinstance(payload, Mapping) else payload,
            description=description,
            creator=creator,
            transient=transient_environment,
            production=(
                environment == "production"
                if production_environment is None
                else production_environment
            ),
            at=self.clock.now(),
        )

    def create_deployment_status(
        self,
        deployment: Deployment,
        state: str,
        *,
        creator: str,
        description: str = "",
        log_url: str = "",
        environment_url: str = "",
        environment: str | None = None,
        auto_inactive: bool = True,
    ) -> DeploymentStatus:
        """Append a status (now); `WorldError` for a state GitHub does not know."""
        self._sync_deployments()
        if state not in STATES:
            raise WorldError(f"state is not included in the list: {state}")
        return self._add_status(
            deployment,
            state,
            at=self.clock.now(),
            creator=creator,
            description=description,
            log_url=log_url,
            environment_url=environment_url,
            environment=environment,
            auto_inactive=auto_inactive,
        )

    def _new_deployment(
        self,
        repo: Repo,
        *,
        sha: str,
        ref: str,
        task: str,
        environment: str,
        payload: dict[str, Any] | str,
        description: str | None,
        creator: str,
        transient: bool,
        production: bool,
        at: datetime,
        run: Run | None = None,
    ) -> Deployment:
        ident = next(self._deployment_ids)
        rng = random.Random(f"{self.seed}:deployment:{ident}")
        item = Deployment(
            id=ident,
            node_id=_node_id("DE_kwDO", rng),
            repo=repo,
            sha=sha,
            ref=ref,
            task=task,
            payload=payload,
            original_environment=environment,
            environment=environment,
            description=description,
            creator=creator,
            created_at=at,
            updated_at=at,
            transient_environment=transient,
            production_environment=production,
            run_id=run.id if run is not None else None,
            run_attempt=run.run_attempt if run is not None else None,
        )
        self._deployments[ident] = item
        self._environment_for(repo, environment, at)
        return item

    def _environment_for(self, repo: Repo, name: str, at: datetime) -> None:
        key = (repo.full_name, name)
        if key not in self._gh_envs:
            rng = random.Random(f"{self.seed}:environment:{repo.full_name}:{name}")
            self._gh_envs[key] = GitHubEnvironment(
                id=rng.randrange(1_000_000_000, 9_000_000_000),
                node_id=_node_id("EN_kwDO", rng),
                name=name,
                created_at=at,
            )

    def _add_status(
        self,
        deployment: Deployment,
        state: str,
        *,
        at: datetime,
        creator: str,
        description: str = "",
        log_url: str = "",
        environment_url: str = "",
        environment: str | None = None,
        auto_inactive: bool = True,
        run_id: int | None = None,
    ) -> DeploymentStatus:
        if environment:
            deployment.environment = environment
            self._environment_for(deployment.repo, environment, at)
        ident = next(self._status_ids)
        rng = random.Random(f"{self.seed}:deployment-status:{ident}")
        status = DeploymentStatus(
            id=ident,
            node_id=_node_id("DES_kwDO", rng),
            state=state,
            creator=creator,
            description=description,
            environment=deployment.environment,
            log_url=log_url,
            environment_url=environment_url,
            created_at=at,
            run_id=run_id,
        )
        deployment.statuses.append(status)
        deployment.updated_at = at
        if state == "success" and auto_inactive:
            for older in self._deployments.values():
                if (
                    older.id < deployment.id
                    and older.repo is deployment.repo
                    and older.environment == deployment.environment
                    and not older.transient_environment
                    and older.state == "success"
                ):
                    self._add_status(older, "inactive", at=at, creator=creator, auto_inactive=False)
        return status

    # ------------------------------------------------------------------------------------
    # Deployments made by Actions runs
    # ------------------------------------------------------------------------------------

    def _actions_events(self, plan: RunPlan) -> tuple[JobPlan | None, list[tuple[datetime, str]]]:
        """The deploy job of an attempt (None: it never ran) and its deployment's states."""
        job = next(
            (job for job in plan.jobs if job.name == "deploy" and job.conclusion != "skipped"),
            None,
        )
        if job is None:
            return None, []
        events = [(job.created_at, "queued")]
        if job.steps and job.started_at < job.completed_at:
            events.append((job.started_at, "in_progress"))
        if job.conclusion in _FINAL:
            events.append((job.completed_at, _FINAL[job.conclusion]))
        return job, events

    def _sync_deployments(self) -> None:
        """Make real, in time order, what Actions runs have done to deployments by now."""
        now = self.clock.now()
        due: list[tuple[datetime, int, int, int, str, Run]] = []
        for run in self._runs.values():
            if run.created_at > now:
                continue
            attempts = [(past.number, past.plan) for past in run.past_attempts]
            attempts.append((run.run_attempt, self._plans[run.id]))
            for number, plan in attempts:
                cursor = self._actions_cursors.get((run.id, number))
                applied = cursor.applied if cursor is not None else 0
                _, events = self._actions_events(plan)
                for index, (at, state) in enumerate(events[applied:], start=applied):
                    if at > now:
                        break
                    due.append((at, run.id, number, index, state, run))
        due.sort(key=lambda item: item[:4])
        for at, run_id, number, _, state, run in due:
            cursor = self._actions_cursors.setdefault((run_id, number), _ActionsCursor())
            if cursor.deployment is None:
                cursor.deployment = self._new_deployment(
                    run.repo,
                    sha=run.head_sha,
                    ref=run.head_branch,
                    task="deploy",
                    environment=run.environment,
                    payload={},
                    description=None,
                    creator=ACTIONS_BOT,
                    transient=False,
                    production=run.environment == "production",
                    at=at,
                    run=run,
                )
                cursor.deployment.run_attempt = number
            self._add_status(cursor.deployment, state, at=at, creator=ACTIONS_BOT, run_id=run_id)
            cursor.applied += 1

    def actions_deployment(self, run: Run, attempt: int | None = None) -> Deployment | None:
        """The deployment Actions made for the run's deploy job (None: not yet, or never)."""
        self._sync_deployments()
        cursor = self._actions_cursors.get((run.id, attempt or run.run_attempt))
        return cursor.deployment if cursor is not None else None
