"""The simulated world behind the sandbox: repos, commits, deploy runs, GHCR, VMs, one clock.

The sandbox GitHub server (`github_server.py`) and the sandbox VM (SSH) server are two views of
this one world, so what a VM prints matches the phase of the GitHub run. Everything is derived
from precomputed timelines and `clock.now()`: a run's status, its jobs and steps, its log, the
lines on its VMs. Actions (`push`, `dispatch`, `cancel`, `start_kamal`) only ever change the
future. Content comes from one seeded `random.Random`: same seed and clock start → the same
world, byte for byte. Pure asyncio + stdlib.

Model: each repo has one deploy workflow (`.github/workflows/deploy.yml`, name "Deploy");
environments are told apart by branch (production ← `main`, staging ← `staging`, preview ←
`preview`). A push run builds (buildpacks → GHCR) then deploys with Kamal; a rollback is a
`workflow_dispatch` of that workflow on the environment's branch with inputs `sha`,
`environment`, `request_id` (display title `Roll back <env> to <sha7> [<request_id>]`), and
only deploys (`kamal deploy --skip-push --version <sha>`). Runs of one environment share a
concurrency group: a new run waits (`pending`) for the active one; an older pending run is
cancelled, as GitHub does. A run meets the world as it is: a held deploy lock → `lock_held`,
an offline deploy host → `ssh_unreachable`, a refused key → `ssh_auth_failed`, a rollback to an
image deleted from GHCR → fails at the pull with `manifest unknown`.

The world is made of parts that share its state: `GitHub` (github.py: repos, commits, runs,
jobs, logs, GHCR), `Deployments` (deployments.py: GitHub Deployments, including those the
runs' deploy jobs create), `Environments` (environments.py), `Vms` (vms.py: hosts, containers,
VM lines) and `Kamal` (kamal.py: Kamal over SSH, deploy locks). `World` composes them; it creates
runs (`push`, `dispatch`, the seeded past), schedules them against the world as it is,
cancels them, and wakes whoever waits for the next change.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from vmkit_tui.domain.models import is_sha
from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.base import Owner, WorldError, _Interval, _node_id, _plus
from vmkit_tui.sandbox.world.clock import ScaledClock, SimClock
from vmkit_tui.sandbox.world.deployments import Deployments
from vmkit_tui.sandbox.world.environments import Environment, Environments, _Env
from vmkit_tui.sandbox.world.github import Commit, GitHub, PastAttempt, Repo, Run, Workflow
from vmkit_tui.sandbox.world.kamal import Kamal
from vmkit_tui.sandbox.world.kamal_output import Outcome
from vmkit_tui.sandbox.world.past import seed_history
from vmkit_tui.sandbox.world.scenarios import (
    IMAGE_GONE,
    SCENARIOS,
    RunContext,
    cancel_plan,
    plan_run,
)
from vmkit_tui.sandbox.world.vms import Vms

CANCEL_GRACE = 3.0  # seconds from a cancel request to the running step being stopped
FORCE_CANCEL_GRACE = 1.0
DISPATCH_DELAY = 2.0  # a dispatched run shows up in listings this long after the request


class World(Deployments, GitHub, Environments, Vms, Kamal):
    """The simulated world. Build one with `World.seeded(...)`."""

    _requested: dict[int, str]  # run id → the scenario asked for
    _moments: list[datetime]  # moments at which something visible changes, in order
    _waiters: list[asyncio.Future[None]]

    def __init__(self, clock: SimClock, seed: int) -> None:
        self.clock = clock
        self.seed = seed
        self.created_at = clock.now()
        self._rng = random.Random(seed)
        self.repos = {}
        self._envs = {}
        self._vms = {}
        self._workflows = {}
        self._runs = {}
        self._plans = {}
        self._contexts = {}
        self._gates = {}
        self._requested = {}
        self._jobs = {}
        self._job_logs = {}
        self._lines = {}
        self._containers = {}
        self._live = {}
        self._images = {}
        self._image_deleted = {}
        self._locks = {}
        self._outages = {}
        self._moments = []
        self._waiters = []
        self._seq = itertools.count()
        self._run_ids = itertools.count(self._rng.randrange(15_100_000_000, 15_900_000_000), 7919)
        self._job_ids = itertools.count(self._rng.randrange(42_000_000_000, 43_000_000_000), 3)
        self._run_numbers = {}
        self._kamal_runs = itertools.count(1)
        self._deployments = {}
        ids = random.Random(f"{seed}:deployment-ids")  # apart from `_rng`: the seeded past stays
        self._deployment_ids = itertools.count(ids.randrange(2_100_000_000, 2_900_000_000), 13)
        self._status_ids = itertools.count(ids.randrange(5_100_000_000, 5_900_000_000), 17)
        self._gh_envs = {}
        self._actions_cursors = {}

    # ------------------------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------------------------

    @classmethod
    def seeded(cls, seed: int = 7, clock: SimClock | None = None, profile: str = "demo") -> World:
        """A believable world from `seed` alone. Without a clock: real time from now (to the
        second), so the demo shows recent history; pass a `ManualClock` for exact tests."""
        if profile not in ("demo", "small"):
            raise WorldError(f"unknown profile: {profile!r}")
        if clock is None:
            clock = ScaledClock(datetime.now(UTC).replace(microsecond=0))
        world = cls(clock, seed)
        seed_history(world, profile)
        return world

    # ------------------------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------------------------

    def push(
        self,
        repo: Repo | str,
        environment: Environment | str,
        scenario: str = "success",
        message: str | None = None,
        *,
        actor: str | None = None,
        files: tuple[str, ...] | None = None,
    ) -> Run:
        """A new commit on the environment's branch and the push run it triggers (now)."""
        if scenario not in SCENARIOS:
            raise WorldError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        env = self._env(repo, environment)
        now = self.clock.now()
        rng = random.Random(f"{self.seed}:push:{len(self._runs)}")
        person = next((p for p in seed_data.PEOPLE if p[1] == actor), None) or rng.choice(
            seed_data.PEOPLE
        )
        parent = max(env.repo.commits, key=lambda c: c.date).sha if env.repo.commits else None
        commit = self._add_commit(
            env.repo,
            message=message or seed_data.commit_message(rng),
            author=person,
            date=now,
            files=files or self._new_commit_files(env.repo, rng, now, None),
            parent=parent,
        )
        run = self._push_run(env, commit, now, scenario)
        self._notify()
        return run

    def dispatch(
        self,
        repo: Repo | str,
        workflow: Workflow | int | str,
        ref: str,
        inputs: Mapping[str, Any],
        *,
        actor: str = "maria-chen",
        scenario: str = "success",
    ) -> Run:
        """A `workflow_dispatch` rollback run of `inputs["sha"]` on branch `ref`.

        Raises `WorldError` with GitHub's message for a ref that is not a branch, unknown or
        missing inputs, and an environment that is not one of the workflow's choices.
        """
        target = self._repo(repo)
        key = workflow.id if isinstance(workflow, Workflow) else workflow
        if self.workflow(target, key) is None:
            raise WorldError("Not Found")
        if ref not in target.branches:
            raise WorldError(f"No ref found for: {ref}")
        unexpected = sorted(set(inputs) - {"sha", "environment", "request_id"})
        if unexpected:
            raise WorldError("Unexpected inputs provided: " + str(unexpected).replace("'", '"'))
        for name, value in inputs.items():
            if not isinstance(value, str):
                raise WorldError(f"Invalid value for input '{name}'")
        if "sha" not in inputs:
            raise WorldError("Required input 'sha' not provided")
        sha = inputs["sha"]
        if not is_sha(sha):
            raise WorldError("Invalid value for input 'sha'")
        env_name = inputs.get("environment") or next(
            (
                env.name
                for (name, _), env in self._envs.items()
                if name == target.full_name and env.branch == ref
            ),
            None,
        )
        choices = [env.name for (name, _), env in self._envs.items() if name == target.full_name]
        if env_name not in choices:
            raise WorldError(
                f"Provided value '{env_name}' for input 'environment' not in the list of allowed values"
            )
        if scenario not in SCENARIOS:
            raise WorldError(f"unknown scenario {scenario!r}")
        env = self._envs[(target.full_name, env_name)]
        request_id = inputs.get("request_id") or None
        title = f"Roll back {env.name} to {sha[:7]}" + (f" [{request_id}]" if request_id else "")
        run = self._create_run(
            env,
            created_at=_plus(self.clock.now(), DISPATCH_DELAY),
            event="workflow_dispatch",
            head_sha=target.branches[ref],
            head_branch=ref,
            sha=sha,
            actor=actor,
            title=title,
            scenario=scenario,
            request_id=request_id,
            inputs={key: str(value) for key, value in inputs.items()},
        )
        self._notify()
        return run

    def rerun(self, run: Run, scenario: str = "success") -> None:
        """Re-run a completed run, as GitHub's "Re-run all jobs" does: the same run id with the
        next `run_attempt`, a new `run_started_at` and new jobs; the earlier attempt, its jobs
        and logs stay as they were. Raises `WorldError` (GitHub's message) while it runs."""
        if scenario not in SCENARIOS:
            raise WorldError(f"unknown scenario {scenario!r}")
        now = self.clock.now()
        if self._plans[run.id].completed_at > now:
            raise WorldError("This workflow is already running")
        run.past_attempts.append(
            PastAttempt(
                run.run_attempt, run.started_at, self._plans[run.id], self._contexts[run.id]
            )
        )
        run.run_attempt += 1
        run.attempt_started_at = now
        run.cancel_requested_at = None
        run.force_cancelled = False
        self._requested[run.id] = scenario
        self._schedule(run, self._envs[(run.repo.full_name, run.environment)])
        self._notify()

    def cancel(self, run: Run, force: bool = False) -> bool:
        """Ask the run to stop. False if it has already completed.

        It ends `cancelled` after the running step is interrupted, unless Kamal has already
        sent the container swap to kamal-proxy: then it finishes on its own (success or
        failure). `force=True` stops the run regardless (the swap on the VM still completes).
        """
        accepted = self._cancel(run, self.clock.now(), force=force)
        if accepted:
            self._notify()
        return accepted

    def _cancel(self, run: Run, at: datetime, *, force: bool) -> bool:
        plan = self._plans[run.id]
        if plan.completed_at <= at:
            return False
        if run.cancel_requested_at is None:
            run.cancel_requested_at = at
        swapped = plan.swap_at is not None and plan.swap_at <= at
        if swapped and not force:
            return True  # kamal-proxy is switching on its own: the run finishes as it will
        if run.force_cancelled or (plan.conclusion == "cancelled" and not force):
            return True
        run.force_cancelled = force
        grace = FORCE_CANCEL_GRACE if force else CANCEL_GRACE
        cut = _plus(at, grace)
        completed = cancel_plan(plan, at, force=force, grace=grace)
        if not swapped:
            self._drop_effects(run.id, cut)
            plan.swap_at = plan.healthy_at = None
        for interval in self._outage_intervals(run.id):
            interval.end = min(interval.end or completed, completed)
        self._add_moments(plan.moments)
        self._replan_followers(run, completed)
        return True

    # ------------------------------------------------------------------------------------
    # Run creation and scheduling
    # ------------------------------------------------------------------------------------

    def _push_run(self, env: _Env, commit: Commit, at: datetime, scenario: str) -> Run:
        """The environment's branch moves to `commit`; the push run that triggers, at `at`
        (also how the seeded past is made)."""
        env.repo.branches[env.branch] = commit.sha
        return self._create_run(
            env,
            created_at=at,
            event="push",
            head_sha=commit.sha,
            sha=commit.sha,
            actor=commit.author_login,
            title=commit.message.splitlines()[0],
            scenario=scenario,
        )

    def _create_run(
        self,
        env: _Env,
        *,
        created_at: datetime,
        event: str,
        head_sha: str,
        sha: str,
        actor: str,
        title: str,
        scenario: str,
        head_branch: str | None = None,
        request_id: str | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> Run:
        run_id = next(self._run_ids)
        workflow = env.workflow
        numbers = self._run_numbers.setdefault(workflow.id, itertools.count(1))
        rng = random.Random(f"{self.seed}:run:{run_id}")
        run = Run(
            id=run_id,
            node_id=_node_id("WFR_kwLO", rng),
            run_number=next(numbers),
            run_attempt=1,
            workflow=workflow,
            repo=env.repo,
            environment=env.name,
            event=event,
            head_sha=head_sha,
            head_branch=head_branch or env.branch,
            display_title=title,
            actor=actor,
            created_at=created_at,
            scenario=scenario,
            is_rollback=event == "workflow_dispatch",
            sha=sha,
            check_suite_id=run_id // 2 + rng.randrange(1000),
            request_id=request_id,
            inputs=dict(inputs or {}),
        )
        self._runs[run.id] = run
        self._requested[run.id] = scenario
        self._schedule(run, env)
        return run

    def _active_runs(self, env: _Env, at: datetime) -> list[Run]:
        return [
            run
            for run in self._runs.values()
            if run.repo is env.repo
            and run.environment == env.name
            and run.created_at <= at
            and self._plans.get(run.id) is not None
            and self._plans[run.id].completed_at > at
        ]

    def _schedule(self, run: Run, env: _Env) -> None:
        """Plan the run against the world as it is when the run is created, and record what it
        will do (log, VM lines, containers, traffic switch, image push) on the timeline."""
        at = run.started_at
        gate: Run | None = None
        for other in sorted(self._active_runs(env, at), key=lambda r: r.created_at):
            if other.id == run.id:
                continue
            if self._plans[other.id].started_at > at:  # an older pending run: GitHub cancels it
                self._cancel(other, at, force=False)
            else:
                gate = other
        gate_at = self._plans[gate.id].completed_at if gate is not None else None
        if gate is not None:
            self._gates[run.id] = gate.id
        else:
            self._gates.pop(run.id, None)
        begin = gate_at or at
        scenario = self._effective_scenario(env, run, begin)
        if scenario == "lock_held" and self._lock_at(env, begin) is None:
            self._hold_lock(env, begin, run.id)
        previous = self._live_at(env.target.hosts[0].vm, begin)
        context = RunContext(
            repo=env.repo.full_name,
            target=env.target,
            head_sha=run.head_sha,
            head_branch=run.head_branch,
            sha=run.sha,
            previous=previous,
            environment=env.name,
            is_rollback=run.is_rollback,
            scenario=scenario,
            actor=run.actor,
            lock=self._lock_at(env, begin),
        )
        plan = plan_run(
            random.Random(
                f"{self.seed}:plan:{run.id}"
                + (f":{run.run_attempt}" if run.run_attempt > 1 else "")
            ),
            context,
            created_at=at,
            gate=gate_at,
            job_ids=self._job_ids,
        )
        run.scenario = scenario
        self._plans[run.id] = plan
        self._contexts[run.id] = context
        for job in plan.jobs:
            self._jobs[job.id] = (run.id, job)
        if plan.image_pushed_at is not None:
            digest = (
                f"sha256:{random.Random(f'{self.seed}:digest:{run.sha}').getrandbits(256):064x}"
            )
            version_id = 200_000_000 + len(self._images[env.repo.full_name]) * 7 + run.id % 5
            self._images[env.repo.full_name].append(
                (plan.image_pushed_at, run.sha, run.id, version_id, digest)
            )
            self._images[env.repo.full_name].sort(key=lambda item: item[0])
        deploy = next((job for job in plan.jobs if job.kamal is not None), None)
        if deploy is not None and deploy.kamal is not None and deploy.kamal_start is not None:
            self._register_script(env, deploy.kamal, deploy.kamal_start, run.id)
        if scenario in ("ssh_unreachable", "ssh_auth_failed"):
            vm = env.target.hosts[0].vm
            if not self._vm_state(vm, begin)[0 if scenario == "ssh_unreachable" else 1]:
                kind = "offline" if scenario == "ssh_unreachable" else "auth"
                end = _plus(plan.completed_at, 120.0)
                self._outages[vm].append(_Interval(begin, end, run.id, kind))
        self._add_moments(plan.moments)

    def _effective_scenario(self, env: _Env, run: Run, at: datetime) -> str:
        """The world overrides what was asked when the deploy could not go otherwise."""
        wanted = self._requested[run.id]
        if not run.is_rollback and wanted in ("buildpack_no_procfile", "ghcr_push_denied"):
            return wanted  # the build fails before anything reaches the VM
        outcome = self._kamal_outcome(env, at, run.sha, wanted, rollback=run.is_rollback)
        return IMAGE_GONE if outcome is Outcome.IMAGE_MISSING else outcome.value

    def _replan_followers(self, run: Run, completed: datetime) -> None:
        """Runs waiting for `run` start earlier now that it ends earlier: plan them again."""
        for follower_id, gate_id in list(self._gates.items()):
            if gate_id != run.id:
                continue
            follower = self._runs[follower_id]
            plan = self._plans[follower_id]
            if plan.completed_at <= completed or plan.conclusion == "cancelled":
                continue
            self._drop_effects(follower_id, follower.started_at)
            for job in plan.jobs:
                self._jobs.pop(job.id, None)
            self._outages_drop(follower_id)
            self._schedule(follower, self._envs[(follower.repo.full_name, follower.environment)])

    # ------------------------------------------------------------------------------------
    # Effects on the timeline
    # ------------------------------------------------------------------------------------

    def _drop_effects(self, owner: Owner, since: datetime) -> None:
        """Forget everything `owner` would have done from `since` on (it never happens)."""
        for key, lines in self._lines.items():
            self._lines[key] = [
                line for line in lines if not (line[4] == owner and line[0] >= since)
            ]
        for vm, records in self._containers.items():
            kept = []
            for record in records:
                if record.owner == owner and record.started_at >= since:
                    continue
                if (
                    record.stop_owner == owner
                    and record.stopped_at is not None
                    and record.stopped_at >= since
                ):
                    record.stopped_at = record.stop_owner = None
                kept.append(record)
            self._containers[vm] = kept
        for vm, switches in self._live.items():
            self._live[vm] = [
                item for item in switches if not (item[3] == owner and item[0] >= since)
            ]
        for repo, pushes in self._images.items():
            self._images[repo] = [
                item for item in pushes if not (item[2] == owner and item[0] >= since)
            ]

    def _add_moments(self, moments: list[datetime]) -> None:
        now = self.clock.now()
        for moment in moments:
            if moment > now:
                bisect.insort(self._moments, moment)

    def next_change_at(self) -> datetime | None:
        """The next moment at which a run, job, step, VM line or live version changes."""
        now = self.clock.now()
        index = bisect.bisect_right(self._moments, now)
        del self._moments[:index]  # the past never changes again
        return self._moments[0] if self._moments else None

    # ------------------------------------------------------------------------------------
    # Change notification
    # ------------------------------------------------------------------------------------

    async def changed(self) -> None:
        """Return after the next change: an action, or the clock reaching the next moment at
        which something visible changes. No polling: one clock sleep and one future."""
        await self._wait(self.next_change_at())

    async def _wait(self, until: datetime | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            if until is None:
                await future
                return
            sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
            try:
                await asyncio.wait((future, sleeper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
