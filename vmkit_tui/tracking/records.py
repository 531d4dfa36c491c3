"""A GitHub watcher's records: what it knows of its environment's runs, and how it brings the
history up to date with them.

`RunRecords` adopts the environment's records (other processes write the history too), plans
what the history lacks for the listed runs (creates, links, status events; `runs`; one record
per attempt of a run: a re-run is a deploy of its own), writes it
in one history write, drops the deploys that write pruned (their runs are never recorded
again) and publishes what changed to the sink. A write returns the records it changed; the
environment is read again only when someone else wrote since this watcher last looked. `EnvironmentTracker` builds its polling loop
on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.models import Deploy, DeployRecord, NewEvent
from vmkit_tui.domain.updates import DeployChanged, DeploysPruned, StepProgress, Update
from vmkit_tui.sources.github import GitHubClient, Job, NotFound, WorkflowRun
from vmkit_tui.store.history import ApplyResult, AsyncHistory, UnknownDeploy
from vmkit_tui.store.spool import delete_spool
from vmkit_tui.tracking.job_logs import logged_jobs
from vmkit_tui.tracking.polling import TrackingTiming
from vmkit_tui.tracking.runs import (
    RunKey,
    attempt_started,
    link_event,
    new_deploy,
    recorded_statuses,
    request_id_of,
    request_id_of_record,
    status_events,
)

__all__ = ["RunRecords", "TrackedRun", "TrackingSink"]


class TrackingSink(Protocol):
    """Where a watcher reports; the service implements it and decides what follows."""

    def publish(self, update: Update) -> None: ...

    async def deploy_started(self, record: DeployRecord) -> None: ...

    async def deploy_finished(self, record: DeployRecord) -> None: ...


@dataclass(eq=False, slots=True)
class TrackedRun:
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


class RunRecords:
    """The records side of one environment's watcher (see the module docstring)."""

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
    ) -> None:
        self.repo = repo
        self.env = env
        self.github = github
        self.history = history
        self.data_dir = Path(data_dir)
        self.sink = sink
        self.now = now
        self.timing = timing or TrackingTiming()
        self._runs: dict[RunKey, TrackedRun] = {}
        self._awaiting: dict[str, DeployRecord] = {}  # request id → dispatched, not yet linked
        self._hints: dict[RunKey, bool] = {}  # `live` for a record about to be adopted
        self._ignored: set[RunKey] = set()  # run attempts whose records were pruned: never again
        self._last_seen: datetime | None = None  # newest deploy recorded before this session
        self._rounds = 0
        self._synced = -1  # the history generation these records reflect (History.generation)

    async def _reload(self) -> list[DeployRecord]:
        """Re-read this environment's records and adopt them (other processes write too)."""
        # Taken before the read: a write landing during it makes the next commit read again.
        generation = self.history.history.generation
        records = await self.history.records(self.repo, self.env.name)
        self._awaiting = {}
        present: set[RunKey] = set()
        for record in records:
            self._adopt(record)
            if record.run_id is not None:
                present.add((record.run_id, record.run_attempt))
        for key in [key for key in self._runs if key not in present]:
            del self._runs[key]  # pruned by another process: never record it again
            self._ignore(key)
        self._synced = generation
        return records

    def _adopt(self, record: DeployRecord) -> None:
        """Take a stored record as what this watcher knows of its deploy."""
        run_id = record.run_id
        if run_id is None:
            request_id = request_id_of_record(record)
            if request_id is not None:
                self._awaiting[request_id] = record
            return
        if any(r.id == record.id for r in self._awaiting.values()):  # linked to its run now
            self._awaiting = {k: r for k, r in self._awaiting.items() if r.id != record.id}
        key = (run_id, record.run_attempt)
        tracked = self._runs.get(key)
        if tracked is None or tracked.record.id != record.id:
            live = self._hints.pop(key, not record.status.is_final)
            self._runs[key] = TrackedRun(record, live)
        else:
            tracked.record = record

    async def _fetch_stragglers(self, listed: dict[RunKey, WorkflowRun]) -> None:
        """Live runs too old for the list (a restart after a long break), and unfinished
        attempts a re-run replaced in the list, are fetched one by one."""
        missing = [
            key
            for key, tracked in self._runs.items()
            if tracked.live and not tracked.record.status.is_final and key not in listed
        ]
        for key in missing[: self.timing.backfill]:
            try:
                run = await self.github.get_run_attempt(self.repo, *key)
            except NotFound:
                self._runs[key].live = False  # deleted on GitHub: nothing more to learn
                continue
            listed[(run.id, run.run_attempt)] = run

    def _plan(
        self, runs: Sequence[WorkflowRun]
    ) -> tuple[list[tuple[Deploy, Sequence[NewEvent]]], list[NewEvent]]:
        """What the history lacks for these runs: creates, links and status events."""
        creates: list[tuple[Deploy, Sequence[NewEvent]]] = []
        events: list[NewEvent] = []
        awaiting = dict(self._awaiting)
        for run in runs:
            key = (run.id, run.run_attempt)
            if key in self._ignored:
                continue
            tracked = self._runs.get(key)
            if tracked is not None:
                events += status_events(tracked.record.id, run, recorded_statuses(tracked.record))
                continue
            self._hints[key] = self._is_live(run)
            request_id = request_id_of(run) if run.run_attempt == 1 else None
            dispatched = awaiting.pop(request_id, None) if request_id else None
            if dispatched is not None:
                self._hints[key] = True
                events.append(link_event(dispatched.id, run))
                events += status_events(dispatched.id, run, recorded_statuses(dispatched))
                continue
            earlier = self._earlier_attempt(run)
            deploy, created = new_deploy(run, self.repo, self.env.name, earlier)
            creates.append((deploy, [created, *status_events(deploy.id, run, ())]))
        return creates, events

    def _earlier_attempt(self, run: WorkflowRun) -> Deploy | None:
        """The recorded deploy of the latest attempt before this one, if any."""
        attempts = [key for key in self._runs if key[0] == run.id and key[1] < run.run_attempt]
        return self._runs[max(attempts)].record.deploy if attempts else None

    def _is_live(self, run: WorkflowRun) -> bool:
        """Whether a run seen for the first time still needs its logs and diagnosis: yes, unless
        it was over before the first poll and older than what earlier sessions recorded (the
        first start records the past without fetching fifty deploys' logs; runs that finished
        while vmkit-tui was closed are caught up on)."""
        if self._rounds > 0 or not run.deploy_status.is_final:
            return True
        return self._last_seen is not None and attempt_started(run) > self._last_seen

    async def _record_runs(self, listed: dict[RunKey, WorkflowRun]) -> None:
        runs = sorted(listed.values(), key=lambda run: (run.created_at, run.id, run.run_attempt))
        unknown = any(key not in self._runs and key not in self._ignored for key in listed)
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
        """One history write; then prune what it pruned, adopt and publish what changed (read
        again if someone else wrote since we last looked). Events of a deploy pruned under us
        are dropped with it, never raised."""
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
        if result.base == self._synced:  # only this write since: it says what changed
            for record in result.touched:
                if (record.deploy.repo, record.deploy.environment) == (self.repo, self.env.name):
                    self._adopt(record)
            self._synced = result.generation
        else:
            await self._reload()
        for record in result.touched:
            self.sink.publish(DeployChanged(record))
        return result

    def _forget(self, deploy_id: str) -> None:
        for key, tracked in list(self._runs.items()):
            if tracked.record.id == deploy_id:
                del self._runs[key]
                self._ignore(key)
        self._awaiting = {k: r for k, r in self._awaiting.items() if r.id != deploy_id}

    def _ignore(self, key: RunKey) -> None:
        self._ignored.add(key)
        self._hints.pop(key, None)

    async def _pruned(self, result: ApplyResult) -> None:
        """Deploys this write pruned: their spools go, their runs are never recorded again."""
        pruned = result.pruned
        gone = set(pruned)
        for record in result.records:
            if record.id in gone and record.run_id is not None:
                self._ignore((record.run_id, record.run_attempt))
        for deploy_id in pruned:
            self._forget(deploy_id)
            await asyncio.to_thread(delete_spool, self.data_dir, deploy_id)
        self.sink.publish(DeploysPruned(tuple(pruned)))
