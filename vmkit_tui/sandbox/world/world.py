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

VM-facing API (used by the SSH sandbox):
- `world.vms() -> list[Vm]`, `world.vm(name) -> Vm`: snapshot with `name`, `address` (shown by
  Kamal as the host), `repo`, `environment`, `deploy_host`, `service`, `offline` (refuse
  connections), `auth_refused` (refuse the key). `set_vm_offline(name, bool)`,
  `set_vm_auth_refused(name, bool)` flip them by hand; scenarios flip them for a run's span.
- `world.vm_lines(vm, source) -> list[VmLine]`: every line emitted so far, oldest first;
  `source` is one of `VM_SOURCES`: "kamal-proxy" (kamal-proxy's JSON log lines, carrying their
  own `time`), "vmkit-agent" (journal messages, no prefix), "app" (the app containers' raw
  output; `VmLine.container` names the container).
- `world.follow_vm(vm, source, since) -> AsyncIterator[VmLine]`: lines after `since` (all when
  None), then new ones as the clock reaches them, until cancelled. Idle VMs emit heartbeat
  lines (app/proxy every 20 s, agent every 60 s of simulated time) while a container is live.
- `world.containers(vm) -> list[Container]`: every app container (newest first), running or
  stopped — what `docker ps -a` would list.
- `world.start_kamal(vm, argv) -> KamalExecution`: Kamal run on the deploy host (`kamal
  rollback V`, `kamal deploy --skip-push --version V` (also `-P`, `--version=V`), `kamal lock
  status|release`, `kamal app containers|version`; optional `-d DEST`). Effects (VM lines, the
  live version, the lock) happen on the clock whether or not anyone reads `lines()`.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vmkit_tui.domain.models import is_sha
from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.clock import ScaledClock, SimClock
from vmkit_tui.sandbox.world.kamal_output import (
    KamalHost,
    KamalScript,
    KamalTarget,
    LockInfo,
    Outcome,
    VmEventKind,
    deploy_script,
    heartbeat_line,
    lock_release_script,
    lock_status_script,
    rollback_script,
)
from vmkit_tui.sandbox.world.scenarios import (
    IMAGE_GONE,
    SCENARIOS,
    JobPlan,
    RunContext,
    RunPlan,
    cancel_plan,
    plan_run,
    render_job_log,
)

VM_SOURCES = ("kamal-proxy", "vmkit-agent", "app")
WORKFLOW_PATH = ".github/workflows/deploy.yml"
WORKFLOW_NAME = "Deploy"
RETAIN_CONTAINERS = 5  # Kamal's default retain_containers
CANCEL_GRACE = 3.0  # seconds from a cancel request to the running step being stopped
FORCE_CANCEL_GRACE = 1.0
DISPATCH_DELAY = 2.0  # a dispatched run shows up in listings this long after the request
ENV_BRANCHES = {"production": "main", "staging": "staging", "preview": "preview"}
_HEARTBEAT_PERIOD = {"app": 20.0, "kamal-proxy": 20.0, "vmkit-agent": 60.0}


class WorldError(Exception):
    """A request the world refuses; the message is the one GitHub (or Kamal) would give."""


# ------------------------------------------------------------------------------------------
# Read-only model objects
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    message: str
    author_name: str
    author_login: str
    date: datetime
    files: tuple[str, ...]
    parent: str | None

    @property
    def email(self) -> str:
        return f"{self.author_login}@users.noreply.github.com"


@dataclass(eq=False, slots=True)
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    commits: list[Commit]  # every commit, oldest first
    branches: dict[str, str]  # branch → tip SHA
    image: str  # e.g. ghcr.io/acme/storefront
    stack: seed_data.Stack
    node_id: str
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def package_name(self) -> str:
        """The GHCR package: the image path after `ghcr.io/<owner>/` (may contain `/`)."""
        return self.image.split("/", 2)[2]


@dataclass(frozen=True, slots=True)
class Workflow:
    id: int
    node_id: str
    name: str
    path: str
    created_at: datetime

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Environment:
    """An environment at one moment (`World.environment` builds it for `clock.now()`)."""

    repo: str
    name: str
    workflow: Workflow
    branch: str
    vm_names: tuple[str, ...]
    deploy_host: str
    service: str
    image: str
    public_host: str
    live_sha: str | None
    retained: tuple[str, ...]  # stopped containers' SHAs Kamal still keeps, newest first
    lock_holder: str | None
    lock: LockInfo | None


@dataclass(eq=False, slots=True)
class Run:
    id: int
    node_id: str
    run_number: int
    run_attempt: int
    workflow: Workflow
    repo: Repo
    environment: str
    event: str  # "push" | "workflow_dispatch"
    head_sha: str
    head_branch: str
    display_title: str
    actor: str
    created_at: datetime
    scenario: str  # what actually happens: the one asked for, unless the world overrode it
    is_rollback: bool
    sha: str  # the version deployed: head_sha, or inputs["sha"] of a rollback
    check_suite_id: int
    request_id: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    cancel_requested_at: datetime | None = None
    force_cancelled: bool = False


@dataclass(frozen=True, slots=True)
class RunState:
    status: str  # pending | queued | in_progress | completed
    conclusion: str | None
    run_started_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StepView:
    name: str
    number: int
    status: str
    conclusion: str | None
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    run_id: int
    run_attempt: int
    name: str
    workflow_name: str
    head_sha: str
    head_branch: str
    status: str
    conclusion: str | None
    created_at: datetime
    started_at: datetime
    completed_at: datetime | None
    steps: tuple[StepView, ...]
    runner_id: int | None
    runner_name: str | None


@dataclass(frozen=True, slots=True)
class VmLine:
    at: datetime
    text: str
    container: str = ""


@dataclass(frozen=True, slots=True)
class Vm:
    name: str
    address: str
    repo: str
    environment: str
    service: str
    deploy_host: bool
    offline: bool
    auth_refused: bool


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    sha: str
    started_at: datetime
    stopped_at: datetime | None  # None while running

    @property
    def running(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True, slots=True)
class FileChange:
    filename: str
    status: str  # added | modified


@dataclass(frozen=True, slots=True)
class Comparison:
    status: str  # ahead | behind | diverged | identical
    ahead_by: int
    behind_by: int
    base: Commit
    head: Commit
    merge_base: Commit
    commits: tuple[Commit, ...]  # merge base (exclusive) → head, oldest first
    files: tuple[FileChange, ...]


@dataclass(frozen=True, slots=True)
class PackageVersion:
    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime


class KamalExecution:
    """One Kamal command on a deploy host, replayed on the world's clock."""

    def __init__(
        self, world: World, vm: str, argv: list[str], lines: list[tuple[datetime, str]], status: int
    ) -> None:
        self.vm = vm
        self.argv = list(argv)
        self._world = world
        self._lines = lines
        self._status = status
        self.ends_at = lines[-1][0] if lines else world.clock.now()

    @property
    def exit_status(self) -> int | None:
        """None until the clock reaches the last line, then Kamal's exit status."""
        return self._status if self._world.clock.now() >= self.ends_at else None

    async def lines(self) -> AsyncIterator[str]:
        for at, text in self._lines:
            await self._world.clock.sleep_until(at)
            yield text

    async def wait(self) -> int:
        await self._world.clock.sleep_until(self.ends_at)
        return self._status


# ------------------------------------------------------------------------------------------
# Internal records
# ------------------------------------------------------------------------------------------

Owner = int | str  # a run id, or "kamal:<n>" for a Kamal execution over SSH, or "seed"


@dataclass(eq=False, slots=True)
class _Env:
    repo: Repo
    name: str
    branch: str
    workflow: Workflow
    target: KamalTarget


@dataclass(eq=False, slots=True)
class _VmRecord:
    name: str
    address: str
    env: _Env
    manual_offline: bool = False
    manual_auth_refused: bool = False


@dataclass(eq=False, slots=True)
class _ContainerRecord:
    name: str
    sha: str
    started_at: datetime
    owner: Owner
    stopped_at: datetime | None = None
    stop_owner: Owner | None = None


@dataclass(eq=False, slots=True)
class _Interval:
    start: datetime
    end: datetime | None
    owner: Owner
    what: str = ""  # an outage's kind: "offline" | "auth" (unused for locks)
    lock: LockInfo | None = None


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _node_id(prefix: str, rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return prefix + "".join(rng.choice(alphabet) for _ in range(14))


def _plus(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


class World:
    """The simulated world. Build one with `World.seeded(...)`."""

    def __init__(self, clock: SimClock, seed: int) -> None:
        self.clock = clock
        self.seed = seed
        self.created_at = clock.now()
        self._rng = random.Random(seed)
        self.repos: dict[str, Repo] = {}
        self._envs: dict[tuple[str, str], _Env] = {}
        self._vms: dict[str, _VmRecord] = {}
        self._workflows: dict[str, Workflow] = {}  # repo full name → its deploy workflow
        self._runs: dict[int, Run] = {}
        self._plans: dict[int, RunPlan] = {}
        self._contexts: dict[int, RunContext] = {}
        self._gates: dict[int, int] = {}  # run id → id of the run it waits for
        self._requested: dict[int, str] = {}  # run id → the scenario asked for
        self._jobs: dict[int, tuple[int, JobPlan]] = {}
        self._job_logs: dict[int, str] = {}
        self._lines: dict[tuple[str, str], list[tuple[datetime, int, str, str, Owner]]] = {}
        self._containers: dict[str, list[_ContainerRecord]] = {}
        self._live: dict[str, list[tuple[datetime, int, str, Owner]]] = {}
        self._images: dict[str, list[tuple[datetime, str, Owner, int, str]]] = {}
        self._image_deleted: dict[str, dict[str, datetime]] = {}
        self._locks: dict[tuple[str, str], list[_Interval]] = {}
        self._outages: dict[str, list[_Interval]] = {}
        self._moments: list[datetime] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._seq = itertools.count()
        self._run_ids = itertools.count(self._rng.randrange(15_100_000_000, 15_900_000_000), 7919)
        self._job_ids = itertools.count(self._rng.randrange(42_000_000_000, 43_000_000_000), 3)
        self._run_numbers: dict[int, itertools.count[int]] = {}
        self._kamal_runs = itertools.count(1)

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
        from vmkit_tui.sandbox.world.past import (
            seed_history,  # local: history builds on World
        )

        seed_history(world, profile)
        return world

    def _add_repo(self, spec: seed_data.RepoSpec, created: datetime) -> Repo:
        rng = self._rng
        repo = Repo(
            id=rng.randrange(400_000_000, 990_000_000),
            owner=spec.owner,
            name=spec.name,
            default_branch="main",
            commits=[],
            branches={},
            image=spec.image,
            stack=spec.stack,
            node_id=_node_id("R_kgDO", rng),
            created_at=created,
        )
        self.repos[repo.full_name] = repo
        self._workflows[repo.full_name] = Workflow(
            id=rng.randrange(60_000_000, 190_000_000),
            node_id=_node_id("W_kwDO", rng),
            name=WORKFLOW_NAME,
            path=WORKFLOW_PATH,
            created_at=created,
        )
        self._images[repo.full_name] = []
        self._image_deleted[repo.full_name] = {}
        return repo

    def _add_environment(
        self, repo: Repo, spec: seed_data.RepoSpec, name: str, vm_count: int
    ) -> _Env:
        short = {"production": "prod", "staging": "stg", "preview": "pre"}.get(name, name)
        hosts = []
        for index in range(1, vm_count + 1):
            vm_name = f"{repo.name}-{short}-{index}"
            address = f"203.0.113.{len(self._vms) + 10}"
            hosts.append(KamalHost(vm_name, address))
        public = spec.public_host if name == "production" else f"{name}.{spec.public_host}"
        target = KamalTarget(repo.name, name, repo.image, tuple(hosts), repo.stack, public)
        env = _Env(
            repo, name, ENV_BRANCHES.get(name, name), self._workflows[repo.full_name], target
        )
        self._envs[(repo.full_name, name)] = env
        for host in hosts:
            self._vms[host.vm] = _VmRecord(host.vm, host.address, env)
            self._containers[host.vm] = []
            self._live[host.vm] = []
            for source in VM_SOURCES:
                self._lines[(host.vm, source)] = []
            self._outages[host.vm] = []
        self._locks[(repo.full_name, name)] = []
        return env

    def _add_commit(
        self,
        repo: Repo,
        *,
        message: str,
        author: tuple[str, str],
        date: datetime,
        files: tuple[str, ...],
        parent: str | None,
    ) -> Commit:
        commit = Commit(_sha(self._rng), message, author[0], author[1], date, files, parent)
        repo.commits.append(commit)
        return commit

    def _new_commit_files(
        self, repo: Repo, rng: random.Random, date: datetime, migration: str | None
    ) -> tuple[str, ...]:
        stack = repo.stack
        files = rng.sample(stack.source_files, rng.randint(1, 4))
        if migration is not None:
            stamp = date.strftime("%Y%m%d%H%M%S")
            files = [seed_data.migration_file(stack, migration, stamp, rng), *files[:2]]
        return tuple(files)

    # ------------------------------------------------------------------------------------
    # Lookups
    # ------------------------------------------------------------------------------------

    def repo(self, full_name: str) -> Repo:
        try:
            return self.repos[full_name]
        except KeyError:
            raise WorldError("Not Found") from None

    def repo_by_id(self, repo_id: int) -> Repo | None:
        return next((repo for repo in self.repos.values() if repo.id == repo_id), None)

    def workflows(self, repo: Repo | str) -> list[Workflow]:
        return [self._workflows[self._repo(repo).full_name]]

    def workflow(self, repo: Repo | str, key: int | str) -> Workflow | None:
        """By numeric id or file name (`deploy.yml`), as the API accepts either."""
        workflow = self._workflows[self._repo(repo).full_name]
        if str(key) in (str(workflow.id), workflow.file_name):
            return workflow
        return None

    def _repo(self, repo: Repo | str) -> Repo:
        return repo if isinstance(repo, Repo) else self.repo(repo)

    def _env(self, repo: Repo | str, environment: Environment | str) -> _Env:
        name = environment.name if isinstance(environment, Environment) else environment
        try:
            return self._envs[(self._repo(repo).full_name, name)]
        except KeyError:
            raise WorldError(f"unknown environment: {name!r}") from None

    def environments(self, repo: Repo | str | None = None) -> list[Environment]:
        wanted = None if repo is None else self._repo(repo).full_name
        return [
            self._environment_at(env, self.clock.now())
            for (repo_name, _), env in self._envs.items()
            if wanted in (None, repo_name)
        ]

    def environment(self, repo: Repo | str, name: str) -> Environment:
        return self._environment_at(self._env(repo, name), self.clock.now())

    def _environment_at(self, env: _Env, at: datetime) -> Environment:
        primary = env.target.hosts[0].vm
        lock = self._lock_at(env, at)
        return Environment(
            repo=env.repo.full_name,
            name=env.name,
            workflow=env.workflow,
            branch=env.branch,
            vm_names=tuple(host.vm for host in env.target.hosts),
            deploy_host=primary,
            service=env.target.service,
            image=env.repo.image,
            public_host=env.target.public_host,
            live_sha=self._live_at(primary, at),
            retained=self._retained_at(primary, at),
            lock_holder=lock.holder if lock else None,
            lock=lock,
        )

    # ------------------------------------------------------------------------------------
    # Runs: derived state
    # ------------------------------------------------------------------------------------

    def runs(self, repo: Repo | str | None = None, *, include_future: bool = False) -> list[Run]:
        """Runs visible now (a dispatched run appears a moment after the request), newest first."""
        now = self.clock.now()
        wanted = None if repo is None else self._repo(repo).full_name
        found = [
            run
            for run in self._runs.values()
            if (include_future or run.created_at <= now) and wanted in (None, run.repo.full_name)
        ]
        found.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return found

    def run(self, run_id: int) -> Run | None:
        return self._runs.get(run_id)

    def run_status(self, run: Run) -> RunState:
        now = self.clock.now()
        plan = self._plans[run.id]
        if now >= plan.completed_at:
            status, conclusion = "completed", plan.conclusion
        elif now >= plan.started_at:
            status, conclusion = "in_progress", None
        else:
            gate = self._gates.get(run.id)
            waiting = gate is not None and now < self._plans[gate].completed_at
            status, conclusion = ("pending" if waiting else "queued"), None
        moments = plan.moments[: bisect.bisect_right(plan.moments, now)]
        updated = max([run.created_at, *moments[-1:]])
        if run.cancel_requested_at is not None and run.cancel_requested_at <= now:
            updated = max(updated, run.cancel_requested_at)
        return RunState(status, conclusion, run.created_at, updated)

    def jobs(self, run: Run) -> list[JobView]:
        now = self.clock.now()
        return [
            self._job_view(run, job, now)
            for job in self._plans[run.id].jobs
            if job.created_at <= now
        ]

    def job(self, job_id: int) -> tuple[Run, JobView] | None:
        found = self._jobs.get(job_id)
        if found is None:
            return None
        run = self._runs[found[0]]
        job = found[1]
        if job not in self._plans[run.id].jobs or job.created_at > self.clock.now():
            return None
        return run, self._job_view(run, job, self.clock.now())

    def _job_view(self, run: Run, job: JobPlan, now: datetime) -> JobView:
        if now >= job.completed_at:
            status, conclusion = "completed", job.conclusion
        elif now >= job.started_at:
            status, conclusion = "in_progress", None
        else:
            status, conclusion = "queued", None
        steps: list[StepView] = []
        if status != "queued":
            for step in job.steps:
                if step.end is not None and step.end <= now and step.start is not None:
                    steps.append(
                        StepView(
                            step.name,
                            step.number,
                            "completed",
                            step.conclusion,
                            step.start,
                            step.end,
                        )
                    )
                elif step.start is not None and step.start <= now:
                    steps.append(
                        StepView(step.name, step.number, "in_progress", None, step.start, None)
                    )
                else:
                    steps.append(StepView(step.name, step.number, "queued", None, None, None))
        started = job.started_at if status != "queued" else job.created_at
        has_runner = status != "queued" and job.runner_id != 0
        return JobView(
            id=job.id,
            run_id=run.id,
            run_attempt=run.run_attempt,
            name=job.name,
            workflow_name=run.workflow.name,
            head_sha=run.head_sha,
            head_branch=run.head_branch,
            status=status,
            conclusion=conclusion,
            created_at=job.created_at,
            started_at=started,
            completed_at=job.completed_at if status == "completed" else None,
            steps=tuple(steps),
            runner_id=job.runner_id if has_runner else None,
            runner_name=f"GitHub Actions {job.runner_id}" if has_runner else None,
        )

    def job_log(self, job_id: int) -> str | None:
        """The job's full log text once it has completed (GitHub gives none before); None for
        unknown jobs, running jobs, and jobs that never ran."""
        found = self.job(job_id)
        if found is None:
            return None
        run, view = found
        if view.status != "completed" or not view.steps:
            return None
        if job_id not in self._job_logs:
            job = self._jobs[job_id][1]
            rng = random.Random(f"{self.seed}:log:{job_id}")
            self._job_logs[job_id] = render_job_log(job, self._contexts[run.id], rng)
        return self._job_logs[job_id]

    def first_healthy_at(self, run: Run) -> datetime | None:
        """When the run's new container first answered its health check (if it has by now)."""
        healthy = self._plans[run.id].healthy_at
        return healthy if healthy is not None and healthy <= self.clock.now() else None

    # ------------------------------------------------------------------------------------
    # GHCR, commits, compare
    # ------------------------------------------------------------------------------------

    def image_tags(self, repo: Repo | str) -> set[str]:
        """Full SHAs whose image is in GHCR now."""
        return self._image_tags_at(self._repo(repo).full_name, self.clock.now())

    def _image_tags_at(self, repo: str, at: datetime) -> set[str]:
        deleted = self._image_deleted[repo]
        return {
            sha
            for pushed, sha, *_ in self._images[repo]
            if pushed <= at and not (sha in deleted and deleted[sha] <= at)
        }

    def package_versions(self, repo: Repo | str) -> list[PackageVersion]:
        """GHCR package versions now, newest first; untagged versions (attestations) included."""
        name = self._repo(repo).full_name
        now = self.clock.now()
        deleted = self._image_deleted[name]
        versions = []
        for pushed, sha, _, version_id, digest in self._images[name]:
            if pushed > now or (sha in deleted and deleted[sha] <= now):
                continue
            versions.append(PackageVersion(version_id, digest, (sha,), pushed))
            versions.append(
                PackageVersion(version_id + 1, "sha256:" + digest[7:][::-1], (), pushed)
            )
        versions.sort(key=lambda version: (version.created_at, version.id), reverse=True)
        return versions

    def commit(self, repo: Repo | str, ref: str) -> Commit | None:
        """A branch name, a full SHA, or an unambiguous SHA prefix (≥ 7) → the commit."""
        target = self._repo(repo)
        sha = target.branches.get(ref, ref)
        exact = next((commit for commit in target.commits if commit.sha == sha), None)
        if exact is not None or len(ref) < 7 or not all(c in "0123456789abcdef" for c in ref):
            return exact
        matches = [commit for commit in target.commits if commit.sha.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def _chain(self, repo: Repo, sha: str) -> list[Commit]:
        """`sha` and its ancestors, newest first (history is single-parent)."""
        by_sha = {commit.sha: commit for commit in repo.commits}
        chain = []
        current: str | None = sha
        while current is not None and current in by_sha:
            chain.append(by_sha[current])
            current = by_sha[current].parent
        return chain

    def comparison(self, repo: Repo | str, base: str, head: str) -> Comparison | None:
        """`GET /compare/{base}...{head}`: None when either ref is unknown."""
        target = self._repo(repo)
        base_commit, head_commit = self.commit(target, base), self.commit(target, head)
        if base_commit is None or head_commit is None:
            return None
        head_chain = self._chain(target, head_commit.sha)
        base_chain = self._chain(target, base_commit.sha)
        base_set = {commit.sha for commit in base_chain}
        ahead = next(index for index, commit in enumerate(head_chain) if commit.sha in base_set)
        merge_base = head_chain[ahead]
        behind = next(
            index for index, commit in enumerate(base_chain) if commit.sha == merge_base.sha
        )
        status = (
            "identical"
            if ahead == behind == 0
            else "ahead"
            if behind == 0
            else "behind"
            if ahead == 0
            else "diverged"
        )
        commits = tuple(reversed(head_chain[:ahead]))
        known = {name for commit in head_chain[ahead:] for name in commit.files}
        files: dict[str, FileChange] = {}
        for commit in commits:
            for name in commit.files:
                files.setdefault(name, FileChange(name, "modified" if name in known else "added"))
        return Comparison(
            status,
            ahead,
            behind,
            base_commit,
            head_commit,
            merge_base,
            commits,
            tuple(files.values()),
        )

    def compare(self, repo: Repo | str, base_sha: str, head_sha: str) -> list[str]:
        """Files changed between two commits (those of the commits after `base` up to `head`)."""
        found = self.comparison(repo, base_sha, head_sha)
        if found is None:
            raise WorldError("Not Found")
        return [change.filename for change in found.files]

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

    def start_kamal(self, vm_name: str, argv: list[str]) -> KamalExecution:
        """Run Kamal on a deploy host (the `kamal-ssh` strategy); see the module docstring."""
        vm = self._vm_record(vm_name)
        env = vm.env
        now = self.clock.now()
        owner = f"kamal:{next(self._kamal_runs)}"
        rng = random.Random(f"{self.seed}:{owner}")
        positional, options, flags = _parse_kamal_argv(argv)
        destination = options.get("destination")
        lock = self._lock_at(env, now)
        previous = self._live_at(env.target.hosts[0].vm, now)
        if destination is not None and destination != env.name:
            script = _error_script(
                f"  ERROR (RuntimeError): Configuration file not found in config/deploy.{destination}.yml"
            )
        elif positional[:1] == ["rollback"] and len(positional) == 2:
            version = positional[1]
            retained = version in self._retained_at(env.target.hosts[0].vm, now)
            script = rollback_script(
                rng,
                env.target,
                now,
                version=version,
                previous=previous,
                retained=retained,
                lock=lock,
            )
        elif (
            positional == ["deploy"] and ({"-P", "--skip-push"} & flags) and options.get("version")
        ):
            version = options["version"]
            script = deploy_script(
                rng,
                env.target,
                now,
                version=version,
                previous=previous,
                outcome=self._kamal_outcome(env, now, version, "success"),
                lock=lock,
            )
        elif positional == ["lock", "status"]:
            script = lock_status_script(rng, env.target, now, lock)
        elif positional == ["lock", "release"]:
            script = lock_release_script(rng, env.target, now, lock)
            released = [
                offset for offset, text in script.console if text == "Released the deploy lock"
            ]
            if released:
                self._release_lock(env, _plus(now, released[0]))
        elif positional == ["app", "containers"]:
            script = _text_script(self._containers_table(env, now))
        elif positional == ["app", "version"]:
            versions: list[str] = []
            for host in env.target.hosts:
                versions += [f"App Host: {host.address}", self._live_at(host.vm, now) or ""]
            script = _text_script(versions)
        else:
            script = _error_script(f'Could not find command "{" ".join(positional[:1])}".')
        self._register_script(env, script, now, owner)
        lines = sorted(
            ((_plus(now, offset), text) for offset, text in script.console),
            key=lambda item: item[0],
        )
        self._notify()
        return KamalExecution(self, vm_name, argv, lines, script.exit_status)

    def _containers_table(self, env: _Env, at: datetime) -> list[str]:
        lines = []
        for host in env.target.hosts:
            lines.append(f"App Host: {host.address}")
            lines.append("CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES")
            for container in self._containers_at(host.vm, at):
                state = "Up" if container.running else "Exited (0)"
                seed = f"{self.seed}:cid:{container.name}:{container.started_at.isoformat()}"
                ident = f"{random.Random(seed).getrandbits(48):012x}"
                lines.append(
                    f'{ident}   {env.repo.image}:{container.sha}   "/cnb/process/web"   '
                    f"{container.started_at.strftime('%Y-%m-%d %H:%M:%S +0000 UTC')}   {state}   "
                    f"{env.target.stack.app_port}/tcp   {container.name}"
                )
        return lines

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
        at = run.created_at
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
            random.Random(f"{self.seed}:plan:{run.id}"),
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

    def _kamal_outcome(
        self, env: _Env, at: datetime, version: str, wanted: str, *, rollback: bool = True
    ) -> Outcome:
        """What happens when Kamal deploys `version` at `at`: SSH first, then the pull, the
        lock, the health check — in the order Kamal meets them."""
        offline = any(self._vm_state(host.vm, at)[0] for host in env.target.hosts)
        refused = any(self._vm_state(host.vm, at)[1] for host in env.target.hosts)
        if wanted == "ssh_unreachable" or offline:
            return Outcome.SSH_UNREACHABLE
        if wanted == "ssh_auth_failed" or refused:
            return Outcome.SSH_AUTH_FAILED
        if rollback and version not in self._image_tags_at(env.repo.full_name, at):
            return Outcome.IMAGE_MISSING
        if wanted == "lock_held" or self._lock_at(env, at) is not None:
            return Outcome.LOCK_HELD
        if wanted == "health_timeout":
            return Outcome.HEALTH_TIMEOUT
        return Outcome.SUCCESS

    def _replan_followers(self, run: Run, completed: datetime) -> None:
        """Runs waiting for `run` start earlier now that it ends earlier: plan them again."""
        for follower_id, gate_id in list(self._gates.items()):
            if gate_id != run.id:
                continue
            follower = self._runs[follower_id]
            plan = self._plans[follower_id]
            if plan.completed_at <= completed or plan.conclusion == "cancelled":
                continue
            self._drop_effects(follower_id, follower.created_at)
            for job in plan.jobs:
                self._jobs.pop(job.id, None)
            self._outages_drop(follower_id)
            self._schedule(follower, self._envs[(follower.repo.full_name, follower.environment)])

    # ------------------------------------------------------------------------------------
    # Effects on the timeline
    # ------------------------------------------------------------------------------------

    def _register_script(
        self, env: _Env, script: KamalScript, start: datetime, owner: Owner
    ) -> None:
        moments = []
        for event in script.vm_events:
            at = _plus(start, event.offset)
            moments.append(at)
            if event.kind is VmEventKind.LINE:
                self._add_line(event.vm, event.source, at, event.text, event.container, owner)
            elif event.kind is VmEventKind.CONTAINER_STARTED:
                self._containers[event.vm].append(
                    _ContainerRecord(event.container, event.sha, at, owner)
                )
            elif event.kind is VmEventKind.CONTAINER_STOPPED:
                for record in reversed(self._containers[event.vm]):
                    if (
                        record.name == event.container
                        and record.stopped_at is None
                        and record.started_at <= at
                    ):
                        record.stopped_at, record.stop_owner = at, owner
                        break
            else:
                bisect.insort(self._live[event.vm], (at, next(self._seq), event.sha, owner))
        moments.extend(_plus(start, offset) for offset, _ in script.console)
        self._add_moments(moments)

    def _add_line(
        self, vm: str, source: str, at: datetime, text: str, container: str, owner: Owner
    ) -> None:
        bisect.insort(self._lines[(vm, source)], (at, next(self._seq), text, container, owner))

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
    # Locks, outages, live versions, containers
    # ------------------------------------------------------------------------------------

    def _lock_at(self, env: _Env, at: datetime) -> LockInfo | None:
        for interval in self._locks[(env.repo.full_name, env.name)]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                return interval.lock
        return None

    def _hold_lock(
        self, env: _Env, at: datetime, owner: Owner, until: datetime | None = None
    ) -> None:
        rng = random.Random(f"{self.seed}:lock:{owner}")
        since = _plus(at, -rng.uniform(300, 3600))
        lock = LockInfo(
            holder=rng.choice(seed_data.LOCK_HOLDERS),
            since=since.replace(microsecond=0),
            version=self._live_at(env.target.hosts[0].vm, at) or _sha(rng),
            message=rng.choice(seed_data.LOCK_MESSAGES),
        )
        self._locks[(env.repo.full_name, env.name)].append(
            _Interval(since, until, owner, lock=lock)
        )

    def _release_lock(self, env: _Env, at: datetime) -> None:
        for interval in self._locks[(env.repo.full_name, env.name)]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                interval.end = at
        self._add_moments([at])

    def _outage_intervals(self, owner: Owner) -> list[_Interval]:
        return [
            interval
            for intervals in self._outages.values()
            for interval in intervals
            if interval.owner == owner
        ]

    def _outages_drop(self, owner: Owner) -> None:
        for vm, intervals in self._outages.items():
            self._outages[vm] = [interval for interval in intervals if interval.owner != owner]

    def _vm_state(self, vm: str, at: datetime) -> tuple[bool, bool]:
        record = self._vms[vm]
        offline, refused = record.manual_offline, record.manual_auth_refused
        for interval in self._outages[vm]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                offline = offline or interval.what == "offline"
                refused = refused or interval.what == "auth"
        return offline, refused

    def _live_at(self, vm: str, at: datetime) -> str | None:
        switches = self._live[vm]
        index = bisect.bisect_right(switches, at, key=lambda item: item[0])
        return switches[index - 1][2] if index else None

    def _containers_at(self, vm: str, at: datetime) -> list[Container]:
        found = [
            Container(
                record.name,
                record.sha,
                record.started_at,
                record.stopped_at
                if record.stopped_at is not None and record.stopped_at <= at
                else None,
            )
            for record in self._containers[vm]
            if record.started_at <= at
        ]
        found.sort(key=lambda container: container.started_at, reverse=True)
        return found

    def _retained_at(self, vm: str, at: datetime) -> tuple[str, ...]:
        live = self._live_at(vm, at)
        retained: list[str] = []
        for container in self._containers_at(vm, at):
            if container.running or container.sha == live or container.sha in retained:
                continue
            retained.append(container.sha)
            if len(retained) == RETAIN_CONTAINERS:
                break
        return tuple(retained)

    # ------------------------------------------------------------------------------------
    # The VM side
    # ------------------------------------------------------------------------------------

    def _vm_record(self, name: str) -> _VmRecord:
        try:
            return self._vms[name]
        except KeyError:
            raise WorldError(f"unknown VM: {name!r}") from None

    def vms(self) -> list[Vm]:
        return [self.vm(name) for name in self._vms]

    def vm(self, name: str) -> Vm:
        record = self._vm_record(name)
        offline, refused = self._vm_state(name, self.clock.now())
        return Vm(
            name=name,
            address=record.address,
            repo=record.env.repo.full_name,
            environment=record.env.name,
            service=record.env.target.service,
            deploy_host=record.env.target.hosts[0].vm == name,
            offline=offline,
            auth_refused=refused,
        )

    def set_vm_offline(self, name: str, offline: bool) -> None:
        self._vm_record(name).manual_offline = offline
        self._notify()

    def set_vm_auth_refused(self, name: str, refused: bool) -> None:
        self._vm_record(name).manual_auth_refused = refused
        self._notify()

    def containers(self, vm_name: str) -> list[Container]:
        self._vm_record(vm_name)
        return self._containers_at(vm_name, self.clock.now())

    def vm_lines(self, vm_name: str, source: str) -> list[VmLine]:
        """Every line `source` has emitted on the VM so far, oldest first."""
        return self._vm_lines_until(vm_name, source, self.clock.now())

    def _vm_lines_until(self, vm_name: str, source: str, until: datetime) -> list[VmLine]:
        self._vm_record(vm_name)
        if source not in VM_SOURCES:
            raise WorldError(f"unknown source {source!r}; one of {', '.join(VM_SOURCES)}")
        stored = self._lines[(vm_name, source)]
        index = bisect.bisect_right(stored, until, key=lambda line: line[0])
        lines = [VmLine(at, text, container) for at, _, text, container, _ in stored[:index]]
        beats = list(self._heartbeats(vm_name, source, until))
        return list(heapq.merge(lines, beats, key=lambda line: line.at)) if beats else lines

    def _heartbeat_times(self, vm_name: str, source: str) -> tuple[datetime, float]:
        period = _HEARTBEAT_PERIOD[source]
        phase = random.Random(f"{self.seed}:beat:{vm_name}:{source}").uniform(0, period)
        return _plus(self.created_at, phase), period

    def _heartbeats(self, vm_name: str, source: str, until: datetime) -> Iterator[VmLine]:
        first, period = self._heartbeat_times(vm_name, source)
        env = self._vms[vm_name].env
        index = 0
        while (moment := _plus(first, index * period)) <= until:
            live = self._live_at(vm_name, moment)
            if live is not None and not self._vm_state(vm_name, moment)[0]:
                rng = random.Random(f"{self.seed}:beat:{vm_name}:{source}:{index}")
                name = env.target.container_name(live)
                container = name if source == "app" else ""
                yield VmLine(
                    moment, heartbeat_line(rng, env.target, moment, name, source), container
                )
            index += 1

    def _next_vm_moment(self, vm_name: str, source: str, now: datetime) -> datetime:
        stored = self._lines[(vm_name, source)]
        index = bisect.bisect_right(stored, now, key=lambda line: line[0])
        first, period = self._heartbeat_times(vm_name, source)
        beats = max(0, int((now - first).total_seconds() // period) + 1)
        beat = _plus(first, beats * period)
        return min(stored[index][0], beat) if index < len(stored) else beat

    async def follow_vm(
        self, vm_name: str, source: str, since: datetime | None = None
    ) -> AsyncIterator[VmLine]:
        """Lines after `since` (all when None), then new ones as they appear; never ends."""
        last, seen_at_last = since, None  # None: skip every line at `last` (strictly after)
        while True:
            lines = self.vm_lines(vm_name, source)
            if last is None:
                start = 0
            else:
                low = bisect.bisect_left(lines, last, key=lambda line: line.at)
                start = (
                    bisect.bisect_right(lines, last, key=lambda line: line.at)
                    if seen_at_last is None
                    else low + seen_at_last
                )
            for line in lines[start:]:
                yield line
            if start < len(lines):
                last = lines[-1].at
                seen_at_last = len(lines) - bisect.bisect_left(
                    lines, last, key=lambda line: line.at
                )
            await self._wait(self._next_vm_moment(vm_name, source, self.clock.now()))

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


_KAMAL_OPTIONS = {
    "-d": "destination",
    "--destination": "destination",
    "-c": "config-file",
    "--config-file": "config-file",
    "--version": "version",
}


def _parse_kamal_argv(argv: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Kamal's command line → (positional words, options with values, bare flags)."""
    words = list(argv)
    if words and words[0].rsplit("/", 1)[-1] == "kamal":
        words = words[1:]
    positional: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    iterator = iter(words)
    for word in iterator:
        name, equals, value = word.partition("=")
        if name in _KAMAL_OPTIONS:
            options[_KAMAL_OPTIONS[name]] = value if equals else next(iterator, "")
        elif word.startswith("-"):
            flags.add(word)
        else:
            positional.append(word)
    return positional, options, flags


def _text_script(lines: list[str]) -> KamalScript:
    """Output of a quick read-only Kamal command."""
    return KamalScript(
        console=[(0.6 + index * 0.01, line) for index, line in enumerate(lines)], duration=0.8
    )


def _error_script(message: str) -> KamalScript:
    return KamalScript(console=[(0.5, message)], duration=0.5, exit_status=1)
