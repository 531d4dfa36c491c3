"""Deploy tracking, GitHub side: one watcher per configured (repo, environment).

A watcher polls the environment's workflow runs with conditional requests (a 304 is free) and
records what the history lacks (`runs`: every run a deploy, dispatched runs linked to the
record their action made, status changes as STATUS events). While a deploy runs: its step
progress (`StepsChanged`), each job's log into the deploy's spool as soon as that job completes
(claimed by a NOTE event first, so it is written once), and the VM side is told to stream
(through the sink: the service decides). A failed deploy gets ONE DIAGNOSIS event from its spool.

The first round records the environment's recent past (its newest `keep` runs) in one history
write; logs and diagnoses are then caught up on for deploys the history left unfinished and for
runs newer than it knew (they ran while vmkit-tui was closed), a few per poll. A job log is
claimed before it is written: a crash in between loses that log rather than doubling it, and
two trackers never both write it. A finished deploy recorded without its logs (the past of the
first start) gets them when someone looks at it (`catch_up`, through the service).

Timing (`polling`): quick while something is live, slow when idle, jittered, stretched when
GitHub's hourly budget runs low, and cut short when the wall clock jumps (the machine slept).
With nothing live, a round asks the workflow's shared look (`probe`) first and lists its own
branch only when that look changed since its last list (or does not cover its runs).
Every failure becomes a `SourceHealth` and a retry; only cancellation stops a watcher. No
Textual; history I/O goes through `AsyncHistory`, files through threads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.event_ids import diagnosis_event_id, log_marker_id
from vmkit_tui.domain.models import Diagnosis, EventKind, NewEvent, Status, ValidationError
from vmkit_tui.domain.secret import redact
from vmkit_tui.domain.text import sanitise
from vmkit_tui.domain.updates import Health, LogGrew, SourceHealth, StepsChanged
from vmkit_tui.sources.github import (
    GitHubClient,
    GitHubError,
    Job,
    NotFound,
    RateLimited,
    WorkflowRun,
)
from vmkit_tui.store.history import AsyncHistory, HistoryError
from vmkit_tui.store.spool import LogRecord
from vmkit_tui.tracking.diagnose import asks_for_procfile, with_procfile
from vmkit_tui.tracking.job_logs import (
    append_job_logs,
    diagnose_spool,
    job_log_records,
    logged_jobs,
    run_gone_note,
)
from vmkit_tui.tracking.polling import RateBudget, TrackingTiming, poll_failure, wait_wall
from vmkit_tui.tracking.probe import Probes
from vmkit_tui.tracking.records import RunRecords, TrackedRun, TrackingSink
from vmkit_tui.tracking.runs import step_progress, vmkit_deploy_of
from vmkit_tui.tracking.team import TeamShare

__all__ = ["GITHUB_KEY", "EnvironmentTracker"]

log = logging.getLogger("vmkit_tui.tracking.tracker")

GITHUB_KEY = "github"  # SourceHealth.key of a watcher


class EnvironmentTracker(RunRecords):
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
        probes: Probes | None = None,
        team: TeamShare | None = None,
    ) -> None:
        super().__init__(repo, env, github, history, data_dir, sink, now=now, timing=timing)
        self.team = team  # the team history: imported before the runs, so a run links to it
        self.budget = budget or RateBudget()
        self._rng = random.Random()  # jitter only: no need to be reproducible
        keep = history.history.keep
        self._per_page = min(keep, 100)
        self._pages = -(-keep // self._per_page)
        self._loaded = False
        self._reread = False  # re-read the history at the next poll (after a wake)
        self._failures = 0
        self._health: tuple[Health, str] | None = None
        self._claim = uuid.uuid4().hex  # marks the job-log claims this watcher makes
        self._wake = asyncio.Event()
        self.probes = probes
        self._listed: frozenset[int] = frozenset()  # run ids our last own list returned
        # when the shared look before that list was taken, and our branch's runs on it
        self._listed_under: tuple[datetime, tuple[WorkflowRun, ...]] | None = None
        self._as_of: datetime | None = None  # a round that took the shared look's word: its time
        # One round at a time: a poll and a `catch_up` never fetch (and claim, with the same
        # claim token) the same job's log together.
        self._round_lock = asyncio.Lock()
        self.polled = asyncio.Event()  # set by the first poll that went through (past_logs)

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
                self.polled.set()
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
        async with self._round_lock:
            await self._poll()

    async def catch_up(self, deploy_id: str) -> bool:
        """Fetch a finished deploy's job logs now (and diagnose it, if it failed) when it has
        none: the past recorded at the first start has none, and whoever looks at such a deploy
        wants to see why it failed. True if it was followed now (or its run found gone, and
        that recorded)."""
        async with self._round_lock:
            await self._load()
            tracked = next((t for t in self._runs.values() if t.record.id == deploy_id), None)
            if tracked is None:
                await self._reload()  # recorded by another process since
                tracked = next((t for t in self._runs.values() if t.record.id == deploy_id), None)
            if tracked is None or not tracked.record.status.is_final:
                return False
            if logged_jobs(tracked.record):
                return False
            tracked.live = True  # until its logs are in (or known never to come)
            try:
                await self._follow([tracked])
            except NotFound:  # the run was deleted on GitHub: no log will ever come
                tracked.live = False
                await self._commit(events=[run_gone_note(tracked.record, self.now())])
            return True

    async def _load(self) -> None:
        if not self._loaded:
            records = await self._reload()
            self._last_seen = max((r.deploy.created_at for r in records), default=None)
            self._loaded = True

    async def _poll(self) -> None:
        woken = self._reread
        if not self._loaded:
            await self._load()
        elif self._reread:
            self._reread = False
            await self._reload()
        if self.team is not None:
            await self.team.before_round(self.repo, self.env.name)
        self._as_of = None
        look = None
        idle = self._rounds > 0 and not (woken or self._busy() or self._waiting())
        # The first round takes the look too: its list is then under one, and the next idle
        # round can take the look's word for it instead of listing again.
        if self.probes is not None and (idle or self._rounds == 0):
            look = await self.probes.look(self.repo, self.env.workflow)
            under = self._listed_under
            if (
                idle
                and under
                and look.on(self.env.branch) == under[1]
                and look.covers(self._listed, under[0])
            ):
                self._as_of = look.at  # nothing of ours changed on GitHub up to then
                if self.team is not None:  # what GitHub was down for is still sent
                    await self.team.after_round(self.repo, self.env.name)
                self._rounds += 1
                return
        runs = await self.github.list_runs(
            self.repo,
            self.env.workflow,
            branch=self.env.branch,
            per_page=self._per_page,
            max_pages=self._pages,
        )
        listed = {(run.id, run.run_attempt): run for run in runs}
        if self.team is not None:  # a teammate's dispatch: its deploy from its deployment first
            dispatched = {
                deploy_id
                for key, run in listed.items()
                if key not in self._runs and (deploy_id := vmkit_deploy_of(run)) is not None
            }
            if dispatched and await self.team.adopt(self.repo, self.env.name, dispatched):
                await self._reload()  # the adopted records, so their runs link to them
        await self._fetch_stragglers(listed)
        await self._record_runs(listed)
        await self._follow_live()
        if self.team is not None:
            await self.team.after_round(self.repo, self.env.name)
        self._rounds += 1
        # Only a round that got all the way here may be stood in for by the shared look.
        self._listed = frozenset(run.id for run in runs)
        self._listed_under = (look.at, look.on(self.env.branch)) if look is not None else None

    # ---------------------------------------------------------------- health and timing

    def _set_health(self, health: Health, message: str = "", until: datetime | None = None) -> None:
        message = sanitise(message)
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
        health, message = poll_failure(error, self.repo, self.env.workflow)
        if health is Health.AUTH:
            delay = max(delay, self.timing.auth_retry)
        self._set_health(health, f"{message}; retrying in {delay:.0f} s")
        return delay

    def _busy(self) -> list[TrackedRun]:
        return [tracked for tracked in self._runs.values() if tracked.live]

    def _waiting(self) -> bool:
        """A dispatched deploy is still waiting for its run (within `dispatch_wait`)."""
        now, horizon = self.now(), timedelta(seconds=self.timing.dispatch_wait)
        return any(now - r.deploy.created_at < horizon for r in self._awaiting.values())

    def _interval(self) -> float:
        busy = self._busy()
        now = self.now()
        base = self.timing.active if busy or self._waiting() else self.timing.idle
        requests = 1 + min(len(busy), self.timing.backfill + 1)
        interval = self._jittered(
            self.budget.interval(base, requests, self.github.last_rate_limit, now)
        )
        if self._as_of is not None:  # what we know is as old as the shared look: count from it
            interval -= max(0.0, (now - self._as_of).total_seconds())
        return max(0.0, interval)

    def _jittered(self, seconds: float) -> float:
        spread = self.timing.jitter
        return seconds * self._rng.uniform(1 - spread, 1 + spread) if spread else seconds

    async def _wait(self, seconds: float) -> None:
        await wait_wall(
            seconds, sleep=self.timing.sleep, now=self.now, tick=self.timing.tick, wake=self._wake
        )

    # ---------------------------------------------------------------- live deploys

    async def _follow_live(self) -> None:
        """Steps, VM hooks and job logs of live deploys (finished ones a few per poll, newest
        first), then diagnoses of the failed ones whose logs are all in."""
        backfill = self.timing.backfill
        followed: list[TrackedRun] = []
        live = sorted(self._busy(), key=lambda t: t.record.deploy.created_at, reverse=True)
        for tracked in live:
            final = tracked.record.status.is_final
            if not final and not tracked.started:
                continue  # pending: no steps, no logs, nothing on the VM yet
            await self._vm_hooks(tracked)
            if final:
                if backfill == 0:
                    continue
                backfill -= 1
            followed.append(tracked)
        await self._follow(followed)

    async def _follow(self, followed: Sequence[TrackedRun]) -> None:
        """Steps and newly completed job logs of these deploys (each its own run attempt's
        jobs), then diagnoses of the failed ones whose logs are all in."""
        fetched: list[tuple[TrackedRun, Job, list[LogRecord]]] = []
        for tracked in followed:
            record = tracked.record
            run_id = record.run_id
            assert run_id is not None
            jobs = await self.github.list_jobs(self.repo, run_id, record.run_attempt)
            tracked.jobs = tuple(jobs)
            steps = step_progress(jobs)
            if steps != tracked.steps:
                tracked.steps = steps
                self.sink.publish(StepsChanged(record.id, steps))
            fetched += await self._fetch_logs(tracked)
        await self._write_logs(fetched)
        await self._diagnose([t for t in followed if t.record.status.is_final])

    async def _vm_hooks(self, tracked: TrackedRun) -> None:
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

    async def _fetch_logs(
        self, tracked: TrackedRun
    ) -> list[tuple[TrackedRun, Job, list[LogRecord]]]:
        """Logs of the deploy's newly completed jobs (GitHub has none before a job completes)."""
        found: list[tuple[TrackedRun, Job, list[LogRecord]]] = []
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
            records = await asyncio.to_thread(job_log_records, job, job_log, fallback)
            found.append((tracked, job, records))
        return found

    async def _write_logs(self, fetched: Sequence[tuple[TrackedRun, Job, list[LogRecord]]]) -> None:
        """Claim and spool the fetched logs as one unit that stopping cannot split: a claim
        stored without its log would keep every tracker from ever writing that log (a CLI
        `--wait` stops tracking as soon as it sees the claim)."""
        if not fetched:
            return
        unit = asyncio.ensure_future(self._claim_and_spool(fetched))
        try:
            await asyncio.shield(unit)
        except asyncio.CancelledError:
            await asyncio.shield(unit)
            raise

    async def _claim_and_spool(
        self, fetched: Sequence[tuple[TrackedRun, Job, list[LogRecord]]]
    ) -> None:
        """Claim every fetched log in one history write, then spool the ones this watcher won
        (another watcher may have claimed a job first: it writes that log, once)."""
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

    async def _check_procfile(self, found: Diagnosis, sha: str) -> Diagnosis:
        """ "Add a Procfile" only when the commit has none (when it cannot be checked, the
        advice stands: the log said the buildpack found nothing to run)."""
        try:
            procfile = await self.github.get_file(self.repo, "Procfile", ref=sha)
        except GitHubError:
            return found
        return found if procfile is None else with_procfile(found)

    async def _diagnose(self, finished: Sequence[TrackedRun]) -> None:
        """One DIAGNOSIS event per failed deploy once its job logs are all in; a finished
        deploy with nothing left to do stops being live."""
        settled = [tracked for tracked in finished if tracked.logs_settled()]
        events: list[NewEvent] = []
        for tracked in settled:
            record = tracked.record
            if record.status is not Status.FAILED or record.diagnosis is not None:
                continue
            found = await asyncio.to_thread(diagnose_spool, self.data_dir, record.id)
            if found is not None and asks_for_procfile(found):
                found = await self._check_procfile(found, record.deploy.sha)
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
