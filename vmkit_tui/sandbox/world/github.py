"""The GitHub half of the world: repos and commits, the deploy workflow, runs with their jobs,
steps and logs, GHCR images, and compare.

`GitHub` is one of the parts `World` (world.py) is made of: it reads the state below, which
`World` sets up and its scheduler fills (a run's plan, its jobs, the images it pushes); all of
it is seen at `clock.now()`.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.base import Owner, WorldError, _node_id, _sha
from vmkit_tui.sandbox.world.clock import SimClock
from vmkit_tui.sandbox.world.scenarios import JobPlan, RunContext, RunPlan, render_job_log

WORKFLOW_PATH = ".github/workflows/deploy.yml"
WORKFLOW_NAME = "Deploy"


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
    attempt_started_at: datetime | None = None  # a re-run's start (None: the first attempt's)
    past_attempts: list[PastAttempt] = field(default_factory=list)  # oldest first
    triggering_actor: str | None = None  # who re-ran it, for the current attempt (None: actor)

    @property
    def started_at(self) -> datetime:
        """When the current attempt was asked for (GitHub's `run_started_at`)."""
        return self.attempt_started_at or self.created_at

    def started_by(self, attempt: int | None = None) -> str:
        """Who started that attempt (GitHub's `triggering_actor`; `actor` stays the user who
        triggered the first): the current one by default."""
        if attempt is None or attempt == self.run_attempt:
            return self.triggering_actor or self.actor
        past = next((p for p in self.past_attempts if p.number == attempt), None)
        return (past.triggering_actor if past else None) or self.actor


@dataclass(frozen=True, slots=True)
class PastAttempt:
    """An attempt a re-run replaced: what it did stays as it was (GitHub keeps it)."""

    number: int
    started_at: datetime
    plan: RunPlan
    context: RunContext
    triggering_actor: str | None = None  # None: the run's actor


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


class GitHub:
    """Part of `World`: what the GitHub API serves."""

    clock: SimClock
    seed: int
    _rng: random.Random
    repos: dict[str, Repo]
    _workflows: dict[str, Workflow]  # repo full name → its deploy workflow
    _runs: dict[int, Run]
    _plans: dict[int, RunPlan]
    _contexts: dict[int, RunContext]
    _gates: dict[int, int]  # run id → id of the run it waits for
    _jobs: dict[int, tuple[int, JobPlan]]
    _job_logs: dict[int, str]
    _images: dict[str, list[tuple[datetime, str, Owner, int, str]]]
    _image_deleted: dict[str, dict[str, datetime]]
    _run_ids: Iterator[int]
    _job_ids: Iterator[int]
    _run_numbers: dict[int, itertools.count[int]]

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

    def run_status(self, run: Run, attempt: int | None = None) -> RunState:
        """The run's state now, or that of one of its earlier attempts (None: the current)."""
        now = self.clock.now()
        past = self._past_attempt(run, attempt)
        if past is not None:
            return RunState("completed", past.plan.conclusion, past.started_at, _last(past.plan))
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
        updated = max([run.started_at, *moments[-1:]])
        if run.cancel_requested_at is not None and run.cancel_requested_at <= now:
            updated = max(updated, run.cancel_requested_at)
        return RunState(status, conclusion, run.started_at, updated)

    def _past_attempt(self, run: Run, attempt: int | None) -> PastAttempt | None:
        if attempt is None or attempt == run.run_attempt:
            return None
        found = next((past for past in run.past_attempts if past.number == attempt), None)
        if found is None:
            raise WorldError("Not Found")
        return found

    def _attempt_of(self, run: Run, job: JobPlan) -> tuple[int, RunPlan, RunContext] | None:
        """The attempt a job belongs to, with that attempt's plan and context."""
        if job in self._plans[run.id].jobs:
            return run.run_attempt, self._plans[run.id], self._contexts[run.id]
        for past in run.past_attempts:
            if job in past.plan.jobs:
                return past.number, past.plan, past.context
        return None

    def jobs(self, run: Run, attempt: int | None = None) -> list[JobView]:
        """The jobs of the run's current attempt (GitHub's default), or of an earlier one."""
        now = self.clock.now()
        past = self._past_attempt(run, attempt)
        plan = past.plan if past is not None else self._plans[run.id]
        number = past.number if past is not None else run.run_attempt
        return [self._job_view(run, job, now, number) for job in plan.jobs if job.created_at <= now]

    def job(self, job_id: int) -> tuple[Run, JobView] | None:
        found = self._jobs.get(job_id)
        if found is None:
            return None
        run = self._runs[found[0]]
        job = found[1]
        attempt = self._attempt_of(run, job)
        if attempt is None or job.created_at > self.clock.now():
            return None
        return run, self._job_view(run, job, self.clock.now(), attempt[0])

    def _job_view(self, run: Run, job: JobPlan, now: datetime, attempt: int) -> JobView:
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
            run_attempt=attempt,
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
            attempt = self._attempt_of(run, job)
            assert attempt is not None
            rng = random.Random(f"{self.seed}:log:{job_id}")
            self._job_logs[job_id] = render_job_log(job, attempt[2], rng)
        return self._job_logs[job_id]

    def first_healthy_at(self, run: Run) -> datetime | None:
        """When the run's new container first answered its health check (if it has by now)."""
        healthy = self._plans[run.id].healthy_at
        return healthy if healthy is not None and healthy <= self.clock.now() else None

    def image_tags(self, repo: Repo | str) -> set[str]:
        """Full SHAs whose image is in GHCR now."""
        return self._image_tags_at(self._repo(repo).full_name, self.clock.now())

    def delete_image(self, repo: Repo | str, sha: str) -> None:
        """Delete `sha`'s package version from GHCR now (a retention policy, or by hand)."""
        name = self._repo(repo).full_name
        if sha not in self.image_tags(name):
            raise WorldError(f"no image {sha[:7]} in GHCR for {name}")
        self._image_deleted[name][sha] = self.clock.now()
        self._notify()

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


def _last(plan: RunPlan) -> datetime:
    return max(plan.moments or [plan.completed_at])
