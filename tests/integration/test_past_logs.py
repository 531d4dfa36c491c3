"""The past's job logs fetched in the background, against the sandbox GitHub over real HTTP.

Runs that finished before the first start are recorded without logs; nobody selects them, yet
they get their logs and diagnoses, newest first, each job's log fetched once even when a
selection asks for the same deploy meanwhile, and only while the hourly budget is above the
fetcher's floor (below it, the fetcher waits for the reset).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from tests.integration.tracking_fixtures import (
    REPO,
    Recorder,
    health_is,
    make_config,
    record_of,
    tracking,
)
from tests.unit.history_samples import created, make_deploy, status
from vmkit_tui.domain.event_ids import run_gone_id
from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.updates import DeployChanged, Health, Update
from vmkit_tui.sandbox.servers.faults import RecordedRequest
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.job_logs import logged_jobs, wants_job_logs
from vmkit_tui.tracking.polling import TrackingTiming

pytest_plugins = ["tests.integration.sandbox_fixtures"]

JOBS = re.compile(r"/actions/runs/(\d+)(?:/attempts/\d+)?/jobs$")
RUNS = "/actions/workflows/deploy.yml/runs"
LOG = re.compile(r"/actions/jobs/(\d+)/logs$")


def finish(world: World, clock: ManualClock, run: Run) -> None:
    while world.run_status(run).status != "completed":
        clock.advance(30)


def diagnosed(run: Run) -> Callable[[Update], bool]:
    return record_of(run.id, lambda r: r.diagnosis is not None)


def logs_in(update: Update) -> bool:
    return isinstance(update, DeployChanged) and bool(logged_jobs(update.record))


def job_log_requests(sandbox: GitHubSandbox) -> list[str]:
    return [r.path for r in sandbox.requests if LOG.search(r.path)]


async def test_failed_runs_from_before_the_first_start_are_diagnosed_unasked_newest_first(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    older = world.push(REPO, "production", "health_timeout")
    finish(world, clock, older)
    newer = world.push(REPO, "production", "buildpack_no_procfile")
    finish(world, clock, newer)
    clock.advance(3600)  # both over before the first start
    async with tracking(sandbox, clock, tmp_path, past_logs=True) as (service, updates):
        first = await updates.wait(record_of(older.id))
        assert isinstance(first, DeployChanged)
        assert first.record.status is Status.FAILED and first.record.diagnosis is None
        # a selection of the older one while the fetcher works: the same path, one fetch
        asked = asyncio.create_task(service.fetch_logs(first.record.id))
        late = await updates.wait(diagnosed(older))
        assert isinstance(late, DeployChanged) and late.record.diagnosis is not None
        assert late.record.diagnosis.cause.startswith("Health check timed out")
        early = await updates.wait(diagnosed(newer))
        assert isinstance(early, DeployChanged) and early.record.diagnosis is not None
        assert early.record.diagnosis.cause.startswith("Buildpack detection failed")
        await asyncio.wait_for(asked, 20)
        # every finished deploy of the past gets its logs, none is left waiting to be selected
        past = [r for r in History(tmp_path / "history.json").records() if r.status.is_final]
        await updates.wait(lambda _u: all_logged(tmp_path, past), timeout=20)

    # newest first, but for the one a selection asked for
    order = list(dict.fromkeys(u.record.run_id for u in updates.seen if logs_in(u)))
    order.remove(older.id)
    newest = [r.run_id for r in sorted(past, key=lambda r: r.deploy.created_at, reverse=True)]
    newest.remove(older.id)
    assert order == newest and newer.id in order
    fetched = job_log_requests(sandbox)
    assert fetched and len(fetched) == len(set(fetched))  # no job's log twice
    logged = set().union(*(logged_jobs(r) for r in History(tmp_path / "history.json").records()))
    assert logged == {int(LOG.search(path)[1]) for path in fetched}  # type: ignore[index]


def all_logged(data_dir: Path, past: list[DeployRecord]) -> bool:
    history = History(data_dir / "history.json")
    return all(logged_jobs(history.record(r.id)) for r in past if r.run_id is not None)


class Frozen:
    """Sleeps that let real time pass but not the world's: the test moves the clock."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.01)


async def condition(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def window_spend(requests: list[RecordedRequest], limit: int) -> list[tuple[RecordedRequest, int]]:
    """Each counted request with what was left of its hour's budget before it (the sandbox
    opens an hour at the first request after the last one ended)."""
    out: list[tuple[RecordedRequest, int]] = []
    reset: datetime | None = None
    used = 0
    for request in requests:
        assert request.at is not None
        if reset is None or request.at >= reset:
            reset, used = request.at + timedelta(hours=1), 0
        out.append((request, limit - used))
        used += request.counted
    return out


async def test_the_fetcher_waits_for_the_reset_below_its_share_of_the_budget(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    runs = []
    for scenario in ("health_timeout", "buildpack_no_procfile") * 4:
        runs.append(world.push(REPO, "production", scenario))
        finish(world, clock, runs[-1])
    clock.advance(3600)
    sandbox.rate_limit = limit = 30  # half of it: the 5 newest deploys' logs, not all 8
    service = DeployService(
        make_config(sandbox.base_url),
        AsyncHistory(History(tmp_path / "history.json")),
        tmp_path,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=Frozen().sleep),
    )
    async with service.updates.subscription() as queue, service:
        updates = Recorder(queue)
        await updates.wait(health_is(Health.OK))
        # the fetcher spends down to half the budget, then waits: the oldest is not reached
        await condition(lambda: sandbox.rate_remaining() < limit // 2)
        # while polling goes on (five more polls), the fetcher sends nothing; the shared look
        # at the workflow's runs is reused until it is probe_age old, so the clock moves on for each
        mark = len(sandbox.requests)

        def polls() -> int:
            return len([r for r in sandbox.requests[mark:] if RUNS in r.path])

        for count in range(1, 6):
            clock.advance(TrackingTiming().probe_age + 1)
            await condition(lambda: polls() >= count)  # noqa: B023 - awaited in the loop
        assert not [r.path for r in sandbox.requests[mark:] if JOBS.search(r.path)]
        oldest = runs[0]
        assert not any(diagnosed(oldest)(u) for u in updates.seen)
        clock.advance(3601)  # the hour is over: a fresh budget
        await updates.wait(diagnosed(oldest))
    spend = window_spend(sandbox.requests, limit)
    starts = [(request, left) for request, left in spend if JOBS.search(request.path)]
    assert starts and all(left >= limit // 2 for _request, left in starts), [
        (request.path, left) for request, left in starts
    ]
    api = [request for request in sandbox.requests if not request.path.startswith("/_blob/")]
    assert not any(request.status in (403, 429) for request in api)  # never rate limited
    first_reset = spend[0][0].at + timedelta(hours=1)  # type: ignore[operator]
    later = [request for request, _left in starts if request.at >= first_reset]  # type: ignore[operator]
    assert later, "nothing was fetched after the reset"


async def test_a_run_github_no_longer_has_is_recorded_as_gone_and_not_asked_about_again(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    """A past deploy whose run GitHub has deleted: the fetcher's one 404 is recorded as a note,
    so neither it at the next start nor a selection asks GitHub for that run again."""
    gone = make_deploy(1, repo=REPO, run_id=987_654_321)
    history = History(tmp_path / "history.json")
    finished = [status(gone.id, Status.RUNNING), status(gone.id, Status.FAILED)]
    history.apply([(gone, [created(gone), *finished])])

    def asked() -> list[str]:
        return [r.path for r in sandbox.requests if JOBS.search(r.path) and "987654321" in r.path]

    async with tracking(sandbox, clock, tmp_path, past_logs=True) as (_service, updates):
        noted = await updates.wait(
            record_of(987_654_321, lambda r: any(e.event_id == run_gone_id(r.id) for e in r.events))
        )
    assert isinstance(noted, DeployChanged) and not wants_job_logs(noted.record)
    assert len(asked()) == 1
    async with tracking(sandbox, clock, tmp_path, past_logs=True) as (service, updates):
        await updates.wait(health_is(Health.OK))
        record = await service.fetch_logs(gone.id)  # a selection of it: answered from the note
        assert record.id == gone.id and not logged_jobs(record)
    assert len(asked()) == 1
