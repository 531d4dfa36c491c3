"""Deploy tracking, GitHub side: one watcher per configured (repo, environment).

A watcher polls the environment's workflow runs with conditional requests (a 304 is free) and
turns them into deploy records and events in the history:

- every run becomes a deploy (push runs `push`, dispatched runs `manual`); a run the service
  recorded before dispatching it (its CREATED event carries the `request_id` the run's title
  shows) is linked to that record with one RUN_LINKED event, never recorded twice;
- status changes become STATUS events at GitHub's own times, with deterministic ids, so two
  watchers (two TUIs, a TUI and the CLI) recording the same change write it once;
- while a deploy runs: its step progress (`StepsChanged`), each job's log into the deploy's
  spool as soon as that job completes (claimed by a NOTE event first, so it is written once),
  and the VM side is told to stream (through the sink: the service decides);
- a failed deploy gets ONE DIAGNOSIS event from its spool.

The first round records the environment's recent past (its newest `keep` runs) in one history
write; logs and diagnoses are then caught up on for deploys the history left unfinished and for
runs newer than it knew (they ran while vmkit-tui was closed), a few per poll. A job log is
claimed before it is written: a crash in between loses that log rather than doubling it, and
two trackers never both write it.

Timing: quick while something is live, slow when idle, jittered, stretched when GitHub's hourly
budget runs low (shared between the watchers of one client), and cut short when the wall clock
jumps (the machine slept). Every failure becomes a `SourceHealth` and a retry; only cancellation
stops a watcher. No Textual; history I/O goes through `AsyncHistory`, files through threads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.event_ids import (
    diagnosis_event_id,
    log_marker_id,
    run_link_id,
    status_event_id,
)
from vmkit_tui.domain.models import (
    Deploy,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    ValidationError,
    new_deploy_id,
)
from vmkit_tui.domain.secret import redact
from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import (
    DeployChanged,
    DeploysPruned,
    Health,
    LogGrew,
    SourceHealth,
    StepProgress,
    StepsChanged,
    Update,
)
from vmkit_tui.sources.github import (
    AuthError,
    BadResponse,
    GitHubClient,
    GitHubError,
    Job,
    NotFound,
    RateLimit,
    RateLimited,
    Unavailable,
    WorkflowRun,
)
from vmkit_tui.store.history import ApplyResult, AsyncHistory, HistoryError, UnknownDeploy
from vmkit_tui.store.spool import LogRecord, delete_spool
from vmkit_tui.tracking.job_logs import (
    append_job_logs,
    diagnose_spool,
    job_log_records,
    logged_jobs,
)

__all__ = [
    "GITHUB_KEY",
    "EnvironmentTracker",
    "RateBudget",
    "TrackingSink",
    "TrackingTiming",
    "link_event",
    "new_deploy",
    "request_id_of",
    "status_events",
    "wait_wall",
]

log = logging.getLogger("vmkit_tui.tracking.tracker")

GITHUB_KEY = "github"  # SourceHealth.key of a watcher
TITLE_LIMIT = 500  # characters of a run title kept in the history
# The request id the deploy workflow's run-name carries: "Roll back <env> to <sha7> [<id>]".
_REQUEST_ID = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_.-]{7,63})\]")
_FULL_SHA = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TrackingTiming:
    """How often and how patiently watchers poll (seconds). `sleep` is injectable so tests and
    the benchmark run on the sandbox world's clock; the wall clock is the service's `now`."""

    active: float = 3.0  # something is live (gh run watch polls every 3 s)
    idle: float = 15.0  # nothing is live (GitHub suggests 10–15 s for run lists)
    jitter: float = 0.15  # ± this fraction, so many watchers do not poll in step
    tick: float = 5.0  # longest single sleep: a wall-clock jump is noticed within it
    max_backoff: float = 120.0  # after repeated failures
    auth_retry: float = 300.0  # after the token was refused
    log_attempts: int = 5  # polls to wait for a completed job's log before giving up on it
    backfill: int = 5  # finished deploys whose logs one poll may fetch (the rest: next polls)
    recent: float = 120.0  # a deploy that finished this recently still gets its VM lines
    dispatch_wait: float = 600.0  # a dispatched deploy waits this long for its run, polling quick
    sleep: Sleep = asyncio.sleep


class TrackingSink(Protocol):
    """Where a watcher reports; the service implements it and decides what follows."""

    def publish(self, update: Update) -> None: ...

    async def deploy_started(self, record: DeployRecord) -> None: ...

    async def deploy_finished(self, record: DeployRecord) -> None: ...


@dataclass(slots=True)
class RateBudget:
    """Shares GitHub's hourly budget between the watchers of one client.

    304s are free, so while plenty is left the base intervals stand. Below `low_water` (a
    fraction of the limit) every poll is assumed to cost its full price, and intervals stretch
    so that all watchers together fit in what is left before the reset, minus a reserve for the
    user's own actions (rollback, cancel). With nothing spare: wait for the reset."""

    watchers: int = 1
    low_water: float = 0.2
    reserve: int = 100

    def interval(
        self, base: float, requests_per_poll: int, limit: RateLimit | None, now: datetime
    ) -> float:
        if limit is None or limit.limit <= 0:
            return base  # GHES with rate limiting off sends no headers
        window = (limit.reset - now).total_seconds()
        if window <= 0 or limit.remaining >= limit.limit * self.low_water:
            return base
        spare = limit.remaining - min(self.reserve, limit.limit // 10)
        if spare <= 0:
            return max(base, window)
        return max(base, window * requests_per_poll * max(1, self.watchers) / spare)


# ------------------------------------------------------------------------------------------
# Runs → records (pure)
# ------------------------------------------------------------------------------------------


def request_id_of(run: WorkflowRun) -> str | None:
    """The request id a dispatched run's title carries, if any."""
    if run.event != "workflow_dispatch":
        return None
    match = _REQUEST_ID.search(run.display_title)
    return match.group(1) if match else None


def _title(run: WorkflowRun) -> str:
    lines = run.display_title.splitlines()
    return lines[0][:TITLE_LIMIT] if lines else ""


def new_deploy(run: WorkflowRun, repo: str, environment: str) -> tuple[Deploy, NewEvent]:
    """A deploy record for a run nobody recorded, and its CREATED event.

    A dispatched run deploys its `sha` input, which the runs API does not return: a full SHA in
    the title is taken as that input, else the run's head SHA stands in."""
    dispatched = run.event == "workflow_dispatch"
    sha = run.head_sha
    if dispatched and (match := _FULL_SHA.search(run.display_title)):
        sha = match.group()
    deploy = Deploy(
        id=new_deploy_id(),
        repo=repo,
        environment=environment,
        sha=sha,
        triggered_by=Trigger.MANUAL if dispatched else Trigger.PUSH,
        actor=run.actor or "",
        created_at=run.created_at,
        run_id=run.id,
        run_url=run.html_url,
    )
    data: dict[str, str] = {"title": _title(run), "event": run.event}
    if run.head_branch is not None:
        data["branch"] = run.head_branch
    created = NewEvent(deploy.id, EventKind.CREATED, run.created_at, data=data)
    return deploy, created


def link_event(deploy_id: str, run: WorkflowRun) -> NewEvent:
    """Ties a deploy the service recorded before dispatching to the run that carries it out."""
    return NewEvent(
        deploy_id,
        EventKind.RUN_LINKED,
        run.created_at,
        detail=f"GitHub run {run.id}",
        data={"run_id": run.id, "run_url": run.html_url},
        event_id=run_link_id(deploy_id),
    )


def status_events(deploy_id: str, run: WorkflowRun, recorded: Collection[Status]) -> list[NewEvent]:
    """The STATUS events that bring a deploy up to its run's state, at GitHub's own times.

    A run seen only once it has finished gets its 'running' too (from `run_started_at`), so its
    duration is known; a cancelled one does not (it may never have started)."""
    target = run.deploy_status
    wanted: list[tuple[Status, datetime]] = []
    started = run.run_started_at or run.created_at
    if target is Status.PENDING:
        if not recorded:
            wanted.append((Status.PENDING, run.created_at))
    elif target is Status.RUNNING:
        wanted.append((Status.RUNNING, started))
    else:
        if target is not Status.CANCELLED:
            wanted.append((Status.RUNNING, started))
        wanted.append((target, max(run.updated_at, started)))
    return [
        NewEvent(
            deploy_id,
            EventKind.STATUS,
            at,
            status=status,
            detail=f"GitHub run {run.id}: {run.status}"
            + (f" ({run.conclusion})" if run.conclusion else ""),
            event_id=status_event_id(deploy_id, status),
        )
        for status, at in wanted
        if status not in recorded
    ]


def _statuses(record: DeployRecord) -> set[Status]:
    return {e.status for e in record.events if e.kind is EventKind.STATUS and e.status is not None}


def _request_id_of_record(record: DeployRecord) -> str | None:
    for event in record.events:
        if event.kind is EventKind.CREATED:
            value = event.data.get("request_id")
            return value if isinstance(value, str) else None
    return None


def _steps(jobs: Iterable[Job]) -> tuple[StepProgress, ...]:
    return tuple(
        StepProgress(job.name, step.name, step.number, step.status, step.conclusion)
        for job in jobs
        for step in job.steps
    )


def _failure(error: Exception, repo: str, workflow: str) -> tuple[Health, str]:
    """What a failed poll means for the user, in words (the retry delay is added by the caller)."""
    if isinstance(error, AuthError):
        return Health.AUTH, f"GitHub refused the token: {error}"
    if isinstance(error, NotFound):
        return (
            Health.ERROR,
            f"GitHub has no workflow {workflow} in {repo}, or the token cannot see the "
            f"repository: {error}",
        )
    if isinstance(error, Unavailable):
        return Health.UNREACHABLE, f"GitHub is unreachable: {error}"
    if isinstance(error, BadResponse):
        return Health.ERROR, f"GitHub sent an answer vmkit-tui cannot read: {error}"
    if isinstance(error, GitHubError | ValidationError):
        return Health.ERROR, f"GitHub refused the request: {error}"
    if isinstance(error, HistoryError | OSError):
        return Health.ERROR, f"Cannot record deploys: {error}"
    return Health.ERROR, f"Tracking failed: {type(error).__name__}: {error}"


async def wait_wall(
    seconds: float,
    *,
    sleep: Sleep,
    now: Callable[[], datetime],
    tick: float,
    wake: asyncio.Event,
) -> None:
    """Sleep `seconds` in slices of at most `tick`; return early when `wake` is set, or when
    the wall clock (`now`) says the time is up: after the machine slept, the event loop's
    monotonic clock lags behind the wall clock, and the next poll is due at once. `wake` is
    cleared on return."""
    due = now() + timedelta(seconds=seconds)
    left = seconds
    while left > 0 and not wake.is_set():
        step = min(tick, left)
        sleeper = asyncio.ensure_future(sleep(step))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        left -= step
        if now() >= due:
            break
    wake.clear()


# ------------------------------------------------------------------------------------------
# The watcher
# ------------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Run:
    """What a watcher knows of one run's deploy between polls (the history has the rest)."""

    record: DeployRecord
    live: bool  # its job logs, VM lines and diagnosis are still to do
    jobs: tuple[Job, ...] = ()
    steps: tuple[StepProgress, ...] = ()
    misses: dict[int, int] = field(default_factory=dict)  # job id → polls without its log
    given_up: set[int] = field(default_factory=set)  # jobs without a log (skipped, never came)
    vm_started: bool = False
    vm_finished: bool = False

    @property
    def started(self) -> bool:
        return self.record.started_at is not None

    def logs_settled(self) -> bool:
        """Every job completed and its log either in the spool or not coming."""
        done = logged_jobs(self.record) | self.given_up
        return all(job.is_completed and job.id in done for job in self.jobs)


class EnvironmentTracker:
    """Watches one environment's deploy workflow runs; `run()` until cancelled."""

    def __init__(
        self,
        repo: str,
        env: EnvironmentConfig,
        github: GitHubClient,
        history: AsyncHistory,
        data_dir: Path,
        sink: TrackingSink,
        *,
        now: Callable[[], datetime],
        timing: TrackingTiming | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        self.repo = repo
        self.env = env
        self.github = github
        self.history = history
        self.data_dir = Path(data_dir)
        self.sink = sink
        self.now = now
        self.timing = timing or TrackingTiming()
        self.budget = budget or RateBudget()
        self._rng = random.Random()  # jitter only: no need to be reproducible
        keep = history.history.keep
        self._per_page = min(keep, 100)
        self._pages = -(-keep // self._per_page)
        self._runs: dict[int, _Run] = {}
        self._awaiting: dict[str, DeployRecord] = {}  # request id → dispatched, not yet linked
        self._hints: dict[int, bool] = {}  # run id → `live` for a record about to be adopted
        self._ignored: set[int] = set()  # runs whose records were pruned: never recreate them
        self._loaded = False
        self._last_seen: datetime | None = None  # newest deploy recorded before this session
        self._reread = False  # re-read the history at the next poll (after a wake)
        self._rounds = 0
        self._failures = 0
        self._health: tuple[Health, str] | None = None
        self._claim = uuid.uuid4().hex  # marks the job-log claims this watcher makes
        self._wake = asyncio.Event()

    # ---------------------------------------------------------------- loop

    async def run(self) -> None:
        """Poll until cancelled; a failure is published and retried, never raised."""
        while True:
            try:
                await self.poll()
            except Exception as error:
                delay = self._failed(error)
            else:
                self._failures = 0
                self._set_health(Health.OK)
                delay = self._interval()
            await self._wait(delay)

    def wake(self) -> None:
        """Poll now (e.g. a deploy was just dispatched) instead of at the end of the interval,
        re-reading the history first: the deploy that was dispatched is recorded there (and may
        already be linked to its run), and from now on it is live here too."""
        self._reread = True
        self._wake.set()

    def rate_limited(self, error: RateLimited) -> None:
        """The shared client hit a rate limit (and waits it out): say so for this environment."""
        kind = "secondary rate limit" if error.secondary else "rate limit"
        self._set_health(
            Health.RATE_LIMITED,
            f"GitHub {kind} reached: polling resumes at {error.until:%H:%M:%S} UTC "
            f"(in {error.wait:.0f} s)",
            until=error.until,
        )

    async def poll(self) -> None:
        """One round: the run list, what the history lacks, then jobs, logs and diagnoses."""
        if not self._loaded:
            records = await self._reload()
            self._last_seen = max((r.deploy.created_at for r in records), default=None)
            self._loaded = True
        elif self._reread:
            self._reread = False
            await self._reload()
        runs = await self.github.list_runs(
            self.repo,
            self.env.workflow,
            branch=self.env.branch,
            per_page=self._per_page,
            max_pages=self._pages,
        )
        listed = {run.id: run for run in runs}
        await self._fetch_stragglers(listed)
        await self._record_runs(listed)
        await self._follow_live()
        self._rounds += 1

    # ---------------------------------------------------------------- health and timing

    def _set_health(self, health: Health, message: str = "", until: datetime | None = None) -> None:
        message = redact(plain(redact(message)))
        if self._health == (health, message):
            return
        self._health = (health, message)
        self.sink.publish(
            SourceHealth(GITHUB_KEY, self.repo, self.env.name, health, message, until)
        )

    def _failed(self, error: Exception) -> float:
        self._failures += 1
        if isinstance(error, RateLimited):
            self.rate_limited(error)
            return max(1.0, (error.until - self.now()).total_seconds() + 1.0)
        expected = isinstance(error, GitHubError | HistoryError | OSError | ValidationError)
        if not expected and self._failures == 1:  # a bug, most likely: once per failure streak
            log.warning("tracking %s/%s: %s", self.repo, self.env.name, redact(repr(error))[:300])
        delay = self._jittered(
            min(self.timing.max_backoff, self.timing.active * 2 ** min(self._failures - 1, 10))
        )
        health, message = _failure(error, self.repo, self.env.workflow)
        if health is Health.AUTH:
            delay = max(delay, self.timing.auth_retry)
        self._set_health(health, f"{message}; retrying in {delay:.0f} s")
        return delay

    def _busy(self) -> list[_Run]:
        return [tracked for tracked in self._runs.values() if tracked.live]

    def _interval(self) -> float:
        busy = self._busy()
        now = self.now()
        horizon = timedelta(seconds=self.timing.dispatch_wait)
        waiting = any(now - r.deploy.created_at < horizon for r in self._awaiting.values())
        base = self.timing.active if busy or waiting else self.timing.idle
        requests = 1 + min(len(busy), self.timing.backfill + 1)
        return self._jittered(
            self.budget.interval(base, requests, self.github.last_rate_limit, now)
        )

    def _jittered(self, seconds: float) -> float:
        spread = self.timing.jitter
        return seconds * self._rng.uniform(1 - spread, 1 + spread) if spread else seconds

    async def _wait(self, seconds: float) -> None:
        await wait_wall(
            seconds, sleep=self.timing.sleep, now=self.now, tick=self.timing.tick, wake=self._wake
        )

    # ---------------------------------------------------------------- records

    async def _reload(self) -> list[DeployRecord]:
        """Re-read this environment's records and adopt them (other processes write too)."""
        records = await self.history.records(self.repo, self.env.name)
        awaiting: dict[str, DeployRecord] = {}
        present: set[int] = set()
        for record in records:
            run_id = record.run_id
            if run_id is None:
                request_id = _request_id_of_record(record)
                if request_id is not None:
                    awaiting[request_id] = record
                continue
            present.add(run_id)
            tracked = self._runs.get(run_id)
            if tracked is None or tracked.record.id != record.id:
                live = self._hints.pop(run_id, not record.status.is_final)
                self._runs[run_id] = _Run(record, live)
            else:
                tracked.record = record
        for run_id in [run_id for run_id in self._runs if run_id not in present]:
            del self._runs[run_id]  # pruned by another process: never record it again
            self._ignore(run_id)
        self._awaiting = awaiting
        return records

    async def _fetch_stragglers(self, listed: dict[int, WorkflowRun]) -> None:
        """Live runs too old for the list (a restart after a long break) are fetched one by one."""
        missing = [
            run_id
            for run_id, tracked in self._runs.items()
            if tracked.live and not tracked.record.status.is_final and run_id not in listed
        ]
        for run_id in missing[: self.timing.backfill]:
            try:
                listed[run_id] = await self.github.get_run(self.repo, run_id)
            except NotFound:
                self._runs[run_id].live = False  # deleted on GitHub: nothing more to learn

    def _plan(
        self, runs: Sequence[WorkflowRun]
    ) -> tuple[list[tuple[Deploy, Sequence[NewEvent]]], list[NewEvent]]:
        """What the history lacks for these runs: creates, links and status events."""
        creates: list[tuple[Deploy, Sequence[NewEvent]]] = []
        events: list[NewEvent] = []
        awaiting = dict(self._awaiting)
        for run in runs:
            if run.id in self._ignored:
                continue
            tracked = self._runs.get(run.id)
            if tracked is not None:
                events += status_events(tracked.record.id, run, _statuses(tracked.record))
                continue
            self._hints[run.id] = self._is_live(run)
            request_id = request_id_of(run)
            dispatched = awaiting.pop(request_id, None) if request_id else None
            if dispatched is not None:
                self._hints[run.id] = True
                events.append(link_event(dispatched.id, run))
                events += status_events(dispatched.id, run, _statuses(dispatched))
                continue
            deploy, created = new_deploy(run, self.repo, self.env.name)
            creates.append((deploy, [created, *status_events(deploy.id, run, ())]))
        return creates, events

    def _is_live(self, run: WorkflowRun) -> bool:
        """Whether a run seen for the first time still needs its logs and diagnosis: yes, unless
        it was over before the first poll and older than what earlier sessions recorded (the
        first start records the past without fetching fifty deploys' logs; runs that finished
        while vmkit-tui was closed are caught up on)."""
        if self._rounds > 0 or not run.deploy_status.is_final:
            return True
        return self._last_seen is not None and run.created_at > self._last_seen

    async def _record_runs(self, listed: dict[int, WorkflowRun]) -> None:
        runs = sorted(listed.values(), key=lambda run: (run.created_at, run.id))
        unknown = any(run.id not in self._runs and run.id not in self._ignored for run in runs)
        if unknown and self._rounds > 0:
            await self._reload()  # another process (or a dispatch) may have recorded them
        for _attempt in range(3):  # a duplicate create needs one more pass for its statuses
            creates, events = self._plan(runs)
            if not creates and not events:
                return
            await self._commit(creates, events)

    async def _commit(
        self,
        creates: Sequence[tuple[Deploy, Sequence[NewEvent]]] = (),
        events: Sequence[NewEvent] = (),
    ) -> ApplyResult | None:
        """One history write; then prune what it pruned, re-read and publish what changed.
        Events of a deploy pruned under us are dropped with it, never raised."""
        events = list(events)
        while True:
            try:
                result = await self.history.apply(creates, events)
                break
            except UnknownDeploy as gone:
                self._forget(gone.deploy_id)
                events = [event for event in events if event.deploy_id != gone.deploy_id]
                if not creates and not events:
                    return None
        if result.pruned:
            await self._pruned(result)
        touched = {record.id for record in result.records}
        touched.update(event.deploy_id for event in result.events if event is not None)
        touched.difference_update(result.pruned)
        for record in await self._reload():
            if record.id in touched:
                self.sink.publish(DeployChanged(record))
        return result

    def _forget(self, deploy_id: str) -> None:
        for run_id, tracked in list(self._runs.items()):
            if tracked.record.id == deploy_id:
                del self._runs[run_id]
                self._ignore(run_id)
        self._awaiting = {k: r for k, r in self._awaiting.items() if r.id != deploy_id}

    def _ignore(self, run_id: int) -> None:
        self._ignored.add(run_id)
        self._hints.pop(run_id, None)

    async def _pruned(self, result: ApplyResult) -> None:
        """Deploys this write pruned: their spools go, their runs are never recorded again."""
        pruned = result.pruned
        gone = set(pruned)
        for record in result.records:
            if record.id in gone and record.run_id is not None:
                self._ignore(record.run_id)
        for deploy_id in pruned:
            self._forget(deploy_id)
            await asyncio.to_thread(delete_spool, self.data_dir, deploy_id)
        self.sink.publish(DeploysPruned(tuple(pruned)))

    # ---------------------------------------------------------------- live deploys

    async def _follow_live(self) -> None:
        """Steps, VM hooks and job logs of live deploys (finished ones a few per poll, newest
        first), then diagnoses of the failed ones whose logs are all in."""
        backfill = self.timing.backfill
        fetched: list[tuple[_Run, Job, list[LogRecord]]] = []
        followed: list[_Run] = []
        live = sorted(self._busy(), key=lambda t: t.record.deploy.created_at, reverse=True)
        for tracked in live:
            record = tracked.record
            final = record.status.is_final
            if not final and not tracked.started:
                continue  # pending: no steps, no logs, nothing on the VM yet
            await self._vm_hooks(tracked)
            if final:
                if backfill == 0:
                    continue
                backfill -= 1
            run_id = record.run_id
            assert run_id is not None
            jobs = await self.github.list_jobs(self.repo, run_id)
            tracked.jobs = tuple(jobs)
            steps = _steps(jobs)
            if steps != tracked.steps:
                tracked.steps = steps
                self.sink.publish(StepsChanged(record.id, steps))
            fetched += await self._fetch_logs(tracked)
            followed.append(tracked)
        await self._write_logs(fetched)
        await self._diagnose([t for t in followed if t.record.status.is_final])

    async def _vm_hooks(self, tracked: _Run) -> None:
        record = tracked.record
        if not tracked.vm_started and tracked.started:
            finished = record.finished_at
            recent = finished is None or (self.now() - finished).total_seconds() <= (
                self.timing.recent
            )
            if recent:
                tracked.vm_started = True
                await self.sink.deploy_started(record)
        if record.status.is_final and tracked.vm_started and not tracked.vm_finished:
            tracked.vm_finished = True
            await self.sink.deploy_finished(record)

    async def _fetch_logs(self, tracked: _Run) -> list[tuple[_Run, Job, list[LogRecord]]]:
        """Logs of the deploy's newly completed jobs (GitHub has none before a job completes)."""
        found: list[tuple[_Run, Job, list[LogRecord]]] = []
        logged = logged_jobs(tracked.record)
        for job in tracked.jobs:
            if not job.is_completed or job.id in logged or job.id in tracked.given_up:
                continue
            if job.conclusion == "skipped" or not job.steps:
                tracked.given_up.add(job.id)  # never ran: GitHub keeps no log
                continue
            job_log = await self.github.job_log(self.repo, job.id)
            if job_log is None:
                tracked.misses[job.id] = tracked.misses.get(job.id, 0) + 1
                if tracked.misses[job.id] >= self.timing.log_attempts:
                    tracked.given_up.add(job.id)
                continue
            fallback = job.completed_at or job.started_at or self.now()
            found.append((tracked, job, job_log_records(job, job_log, fallback)))
        return found

    async def _write_logs(self, fetched: Sequence[tuple[_Run, Job, list[LogRecord]]]) -> None:
        """Claim every fetched log in one history write, then spool the ones this watcher won
        (another watcher may have claimed a job first: it writes that log, once)."""
        if not fetched:
            return
        claims = [
            NewEvent(
                tracked.record.id,
                EventKind.NOTE,
                job.completed_at or self.now(),
                detail=f"log fetched: job {job.id} ({job.name}, {len(records)} lines)",
                data={
                    "job_id": job.id,
                    "job": job.name,
                    "lines": len(records),
                    "claim": self._claim,
                },
                event_id=log_marker_id(tracked.record.id, job.id),
            )
            for tracked, job, records in fetched
        ]
        result = await self._commit(events=claims)
        if result is None:
            return
        claimed = {event.event_id: event for event in result.events if event is not None}
        won: dict[str, list[LogRecord]] = {}
        for tracked, job, records in fetched:  # a deploy pruned meanwhile has no claim at all
            stored = claimed.get(log_marker_id(tracked.record.id, job.id))
            if stored is not None and stored.data.get("claim") == self._claim:
                won.setdefault(tracked.record.id, []).extend(records)
        for deploy_id, records in won.items():
            await asyncio.to_thread(append_job_logs, self.data_dir, deploy_id, records)
            self.sink.publish(LogGrew(deploy_id))

    async def _diagnose(self, finished: Sequence[_Run]) -> None:
        """One DIAGNOSIS event per failed deploy once its job logs are all in; a finished
        deploy with nothing left to do stops being live."""
        settled = [tracked for tracked in finished if tracked.logs_settled()]
        events: list[NewEvent] = []
        for tracked in settled:
            record = tracked.record
            if record.status is not Status.FAILED or record.diagnosis is not None:
                continue
            found = await asyncio.to_thread(diagnose_spool, self.data_dir, record.id)
            if found is not None:
                events.append(
                    NewEvent(
                        record.id,
                        EventKind.DIAGNOSIS,
                        self.now(),
                        detail=found.cause,
                        data=found.to_data(),
                        event_id=diagnosis_event_id(record.id),
                    )
                )
        if events:
            await self._commit(events=events)
        for tracked in settled:
            tracked.live = False
