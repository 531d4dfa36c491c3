"""Deploy tracking against the sandbox GitHub over real HTTP (127.0.0.1), in virtual time: runs
become records with their statuses, steps and job logs; failures get a diagnosis; the past is
recorded in one write; idle polling is free; two trackers (or a restart) never duplicate
anything; dispatched deploys are linked; pruning never derails a watcher."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from tests.integration.tracking_fixtures import REPO, health_is, record_of, tracking
from vmkit_tui.domain.event_ids import run_deploy_id
from vmkit_tui.domain.models import (
    Deploy,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
)
from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import (
    DeployChanged,
    DeploysPruned,
    Health,
    LogGrew,
    SourceHealth,
    StepsChanged,
)
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github.job_log import parse_job_log
from vmkit_tui.store.history import ApplyResult, History
from vmkit_tui.store.spool import LogRecord, SpoolReader, SpoolWriter, spool_path
from vmkit_tui.tracking.job_logs import logged_jobs
from vmkit_tui.tracking.polling import TrackingTiming

pytest_plugins = ["tests.integration.sandbox_fixtures"]

RUNS_PATH = f"/repos/{REPO}/actions/workflows/deploy.yml/runs"


def statuses(record: DeployRecord) -> list[Status | None]:
    return [e.status for e in record.events if e.kind is EventKind.STATUS]


def job_lines(world: World, run: Run) -> dict[str, list[str]]:
    """Each job's log lines (text after the timestamp), as GitHub serves them."""
    found: dict[str, list[str]] = {}
    for job in world.jobs(run):
        text = world.job_log(job.id)
        if text is not None:
            found[job.name] = [line.text for line in parse_job_log(text).lines]
    return found


def spool(data_dir: Path, deploy_id: str) -> list[LogRecord]:
    with SpoolReader(spool_path(data_dir, deploy_id)) as reader:
        return list(reader)


async def test_a_push_becomes_a_deploy_with_statuses_steps_and_logs(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        await updates.wait(health_is(Health.OK))
        run = world.push(REPO, "production", "success", actor="priya-r")
        done = await updates.wait(
            record_of(run.id, lambda r: r.status is Status.SUCCEEDED and len(logged_jobs(r)) == 2)
        )
        assert isinstance(done, DeployChanged)
        record = done.record
        await updates.wait(lambda u: u == LogGrew(record.id), after=done)  # claimed, then written
        state = world.run_status(run)
        deploy = record.deploy
        assert deploy.sha == run.head_sha and deploy.triggered_by is Trigger.PUSH
        assert deploy.actor == "priya-r" and deploy.environment == "production"
        assert deploy.run_id == run.id
        assert deploy.id == run_deploy_id(REPO, run.id)  # the same on every machine
        assert deploy.run_url == f"https://github.com/{REPO}/actions/runs/{run.id}"
        assert deploy.created_at == run.created_at.replace(microsecond=0)
        commit = world.commit(REPO, run.head_sha)
        assert commit is not None and record.title == commit.message.splitlines()[0]
        assert statuses(record) in (
            [Status.PENDING, Status.RUNNING, Status.SUCCEEDED],
            [Status.RUNNING, Status.SUCCEEDED],
        )
        assert record.started_at == state.run_started_at.replace(microsecond=0)
        assert record.finished_at == state.updated_at.replace(microsecond=0)
        assert record.diagnosis is None

        steps = [u for u in updates.of(StepsChanged) if u.deploy_id == record.id]
        assert len(steps) >= 2  # progress while it ran, then the final state
        assert any(step.status == "in_progress" for update in steps for step in update.steps)
        final = steps[-1].steps
        assert {step.job for step in final} == {"build", "deploy"}
        assert all(s.status == "completed" and s.conclusion == "success" for s in final)

        lines = spool(tmp_path, record.id)
        expected = job_lines(world, run)
        assert {line.source for line in lines} == {"github"}
        for job, texts in expected.items():
            assert [line.text for line in lines if line.host == job] == texts
        first_log = parse_job_log(world.job_log(world.jobs(run)[0].id) or "")
        assert lines[0].at == first_log.lines[0].timestamp  # the line's own time
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("track ")]


EXPECTED_CAUSES = {
    "health_timeout": "Health check timed out: the app listens on 127.0.0.1",
    "buildpack_no_procfile": "Buildpack detection failed: the app has no Procfile",
    "ssh_unreachable": "Kamal could not connect to the VM over SSH",
    "ghcr_push_denied": "Image push to GHCR was denied",
}


async def test_failed_deploys_get_one_diagnosis_pointing_at_their_spool_line(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        await updates.wait(health_is(Health.OK))
        for scenario, cause in EXPECTED_CAUSES.items():
            run = world.push(REPO, "production", scenario)
            done = await updates.wait(record_of(run.id, lambda r: r.diagnosis is not None))
            assert isinstance(done, DeployChanged)
            record = done.record
            assert record.status is Status.FAILED, scenario
            diagnosis = record.diagnosis
            assert diagnosis is not None and diagnosis.cause.startswith(cause), diagnosis
            events = [e for e in record.events if e.kind is EventKind.DIAGNOSIS]
            assert len(events) == 1 and events[0].detail == diagnosis.cause
            lines = spool(tmp_path, record.id)
            assert diagnosis.line_number is not None
            pointed = lines[diagnosis.line_number]
            assert diagnosis.line in plain(pointed.text) and pointed.source == "github"
            # the job that never ran (build failed) has no log and is not waited for
            assert {line.host for line in lines} == set(job_lines(world, run))


class CountingHistory(History):
    """The real history, counting its writes."""

    writes = 0

    def apply(
        self,
        creates: Sequence[tuple[Deploy, Sequence[NewEvent]]] = (),
        events: Sequence[NewEvent] = (),
    ) -> ApplyResult:
        self.writes += 1
        return super().apply(creates, events)


async def test_the_first_round_records_the_past_in_one_write_and_idle_polls_are_free(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    history = CountingHistory(tmp_path / "history.json")
    envs = ("production", "staging")
    async with tracking(sandbox, clock, tmp_path, environments=envs, history=history) as (_, up):
        for env in envs:
            await up.wait(health_is(Health.OK, env))
        assert history.writes == len(envs)  # one write per environment, whatever the count
        for env, branch in (("production", "main"), ("staging", "staging")):
            runs = [r for r in world.runs(REPO) if r.head_branch == branch]
            records = history.records(REPO, env)
            assert {r.run_id for r in records} == {run.id for run in runs}
            for record in records:  # the past: final statuses at GitHub's times, no logs
                assert record.status.is_final and record.finished_at is not None
                assert not spool_path(tmp_path, record.id).exists()
        recorded = (tmp_path / "history.json").read_bytes()
        begin = clock.now()
        end = begin + timedelta(minutes=10)
        async with asyncio.timeout(20):
            while clock.now() < end:
                await asyncio.sleep(0.01)
    assert history.writes == len(envs)
    assert (tmp_path / "history.json").read_bytes() == recorded
    last: datetime | None = None
    looks = 0
    own: Counter[str] = Counter()
    # The rollback-eligibility refresh lists GHCR once a (real) minute: once in this test.
    packages = [r for r in sandbox.requests if "/packages/container/" in r.path]
    assert len(packages) <= 1
    for request in sandbox.requests:
        if request in packages:
            continue
        assert request.path == RUNS_PATH, request.path  # no jobs or logs for the past
        assert request.at is not None
        if "branch=" in request.query:  # a watcher's own list
            own[request.query] += 1
            continue
        # the workflow's shared look (all branches) stands in for idle watchers' own lists
        if last is not None:
            assert request.status == 304, request  # counted requests after the first round: 0
            assert request.at - last >= timedelta(seconds=TrackingTiming().probe_age)
            looks += begin <= request.at < end
        last = request.at
    # Virtual time: while one watcher waits for an answer, the other's sleeps move the clock,
    # so gaps vary; the watchers must still have kept looking.
    assert looks >= 600 / 60
    # the first round's list (under the first look): no more while nothing changed
    assert len(own) == len(envs) and max(own.values()) == 1


async def test_an_idle_watcher_notices_a_push_within_its_interval_without_listing_its_branch(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    # One watcher: in virtual time every watcher's sleep moves the one clock, so only a lone
    # watcher's rounds are exactly an interval apart.
    async with tracking(sandbox, clock, tmp_path, environments=("staging",)) as (_, up):
        await up.wait(health_is(Health.OK, "staging"))
        quiet_until = clock.now() + timedelta(minutes=2)
        async with asyncio.timeout(20):
            while clock.now() < quiet_until:
                await asyncio.sleep(0.01)
        seen = len(sandbox.requests)
        run = world.push(REPO, "staging", "success")
        await up.wait(record_of(run.id))
    lists = [r for r in sandbox.requests[seen:] if "branch=staging" in r.query]
    assert lists and lists[0].at is not None
    assert lists[0].at - run.created_at <= timedelta(seconds=15)  # TrackingTiming.idle
    earlier = [r for r in sandbox.requests[:seen] if "branch=" in r.query]
    assert len(earlier) <= 2  # while nothing happened: the first two rounds only


async def test_two_services_on_one_history_and_a_restart_add_nothing_twice(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with (
        tracking(sandbox, clock, tmp_path) as (_a, first),
        tracking(sandbox, clock, tmp_path) as (_b, second),
    ):
        await first.wait(health_is(Health.OK))
        await second.wait(health_is(Health.OK))
        run = world.push(REPO, "production", "health_timeout")
        for updates in (first, second):
            await updates.wait(record_of(run.id, lambda r: r.diagnosis is not None))
    history = History(tmp_path / "history.json")
    run_ids = [r.run_id for r in history.records(REPO, "production")]
    assert sorted(run_ids) == sorted(r.id for r in world.runs(REPO) if r.head_branch == "main")
    record = history.find_by_run(REPO, run.id)
    assert record is not None
    kinds = [(e.kind, e.status, e.data.get("job_id")) for e in record.events]
    assert len(kinds) == len(set(kinds))  # each status, log marker, diagnosis once
    assert [k for k in kinds if k[0] is EventKind.DIAGNOSIS] == [(EventKind.DIAGNOSIS, None, None)]
    lines = spool(tmp_path, record.id)
    expected = job_lines(world, run)
    assert len(lines) == sum(len(texts) for texts in expected.values())  # each log once

    before = (tmp_path / "history.json").read_bytes()
    async with tracking(sandbox, clock, tmp_path) as (_c, again):
        await again.wait(health_is(Health.OK))
        assert (tmp_path / "history.json").read_bytes() == before  # nothing new to say
        later = world.push(REPO, "production", "success")
        await again.wait(record_of(later.id, lambda r: r.status is Status.SUCCEEDED))
    assert len(spool(tmp_path, record.id)) == len(lines)


def record_dispatch(history: History, world: World, sha: str, request_id: str) -> Deploy:
    """What the rollback code does before dispatching: the deploy, with its request id."""
    deploy = Deploy(
        id=new_deploy_id(),
        repo=REPO,
        environment="production",
        sha=sha,
        triggered_by=Trigger.MANUAL,
        actor="maria-chen",
        created_at=world.clock.now(),
    )
    created = NewEvent(
        deploy.id,
        EventKind.CREATED,
        deploy.created_at,
        data={"title": f"Roll back to {sha[:7]}", "request_id": request_id, "sha": sha},
    )
    history.create_deploy(deploy, [created])
    return deploy


async def test_a_dispatched_deploy_is_linked_to_its_run_never_recorded_twice(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    history = History(tmp_path / "history.json")
    async with tracking(sandbox, clock, tmp_path, history=history) as (service, updates):
        await updates.wait(health_is(Health.OK))
        good = next(
            r
            for r in world.runs(REPO)
            if r.head_branch == "main" and world.run_status(r).conclusion == "success"
        )
        count = len(history.records(REPO, "production"))
        deploy = record_dispatch(history, world, good.sha, "req-0123456789")
        inputs = {"sha": good.sha, "environment": "production", "request_id": "req-0123456789"}
        run = world.dispatch(REPO, "deploy.yml", "main", inputs)
        service.track_now(REPO, "production")
        done = await updates.wait(record_of(run.id, lambda r: r.status.is_final))
        assert isinstance(done, DeployChanged)
        assert done.record.id == deploy.id and done.record.deploy.sha == good.sha
        assert done.record.run_url == f"https://github.com/{REPO}/actions/runs/{run.id}"
        links = [e for e in done.record.events if e.kind is EventKind.RUN_LINKED]
        assert [e.data["run_id"] for e in links] == [run.id]
        assert done.record.status is Status.SUCCEEDED

        # Started elsewhere (the GitHub UI): recorded as manual, at the branch tip.
        other = world.dispatch(REPO, "deploy.yml", "main", {"sha": good.sha})
        found = await updates.wait(record_of(other.id))
        assert isinstance(found, DeployChanged)
        assert found.record.deploy.triggered_by is Trigger.MANUAL
        assert found.record.deploy.sha == other.head_sha
        await updates.wait(record_of(other.id, lambda r: r.status.is_final))
    records = history.records(REPO, "production")
    assert len(records) == count + 2
    assert [r.id for r in records if r.run_id == run.id] == [deploy.id]


async def test_pruning_deletes_spools_and_a_deploy_pruned_under_a_watcher_is_dropped(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "history.json"
    kept = History(path, keep=5)
    async with tracking(sandbox, clock, tmp_path, history=kept) as (_service, updates):
        await updates.wait(health_is(Health.OK))
        records = kept.records(REPO, "production")
        assert len(records) == 5  # the past beyond `keep` was pruned in the same write
        oldest = records[-1]
        with SpoolWriter.for_deploy(tmp_path, oldest.id) as writer:
            writer.append(LogRecord(clock.now(), "vm", "app", "an old line"))
        pushed = world.push(REPO, "production", "success")
        pruned = await updates.wait(
            lambda u: isinstance(u, DeploysPruned) and oldest.id in u.deploy_ids
        )
        assert isinstance(pruned, DeploysPruned)
        assert not spool_path(tmp_path, oldest.id).exists()
        await updates.wait(record_of(pushed.id, lambda r: r.status is Status.RUNNING))

        # Another process, keeping 1, prunes the running deploy under the watcher.
        newest = Deploy(
            new_deploy_id(), REPO, "production", "0" * 40, Trigger.MANUAL, "x", clock.now()
        )
        History(path, keep=1).create_deploy(
            newest, [NewEvent(newest.id, EventKind.CREATED, clock.now())]
        )
        later = world.push(REPO, "production", "success")
        await updates.wait(record_of(later.id, lambda r: r.status is Status.SUCCEEDED))
        assert kept.find_by_run(REPO, pushed.id) is None  # dropped, never recreated
        assert all(u.health is Health.OK for u in updates.of(SourceHealth))


async def test_queued_superseded_and_cancelled_runs_get_the_statuses_they_went_through(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        await updates.wait(health_is(Health.OK))
        first = world.push(REPO, "production", "success")
        await updates.wait(record_of(first.id, lambda r: r.status is Status.RUNNING))
        queued = world.push(REPO, "production", "success")  # waits for the first…
        await updates.wait(record_of(queued.id, lambda r: r.status is Status.PENDING))
        last = world.push(REPO, "production", "success")  # …and is superseded by this one
        await updates.wait(record_of(queued.id, lambda r: r.status is Status.CANCELLED))
        assert world.cancel(first)
        done = {}
        for run in (first, queued, last):
            found = await updates.wait(record_of(run.id, lambda r: r.status.is_final))
            assert isinstance(found, DeployChanged)
            done[run.id] = found.record
    assert statuses(done[first.id])[-2:] == [Status.RUNNING, Status.CANCELLED]
    assert statuses(done[queued.id]) == [Status.PENDING, Status.CANCELLED]  # never started
    assert statuses(done[last.id]) == [Status.PENDING, Status.RUNNING, Status.SUCCEEDED]
    assert all(record.diagnosis is None for record in done.values())


async def test_a_deploy_that_failed_while_vmkit_was_closed_is_caught_up_on(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        await updates.wait(health_is(Health.OK))
    missed = world.push(REPO, "production", "ssh_auth_failed")
    clock.advance(15 * 60)  # it ran and failed while nobody watched
    assert world.run_status(missed).conclusion == "failure"
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        done = await updates.wait(record_of(missed.id, lambda r: r.diagnosis is not None))
        assert isinstance(done, DeployChanged)
        assert done.record.diagnosis is not None
        assert done.record.diagnosis.cause.startswith("The VM refused Kamal's SSH key")
    assert statuses(done.record) == [Status.RUNNING, Status.FAILED]
    logged = [p.name for p in (tmp_path / "logs").glob("*.log")]
    assert logged == [f"{done.record.id}.log"]  # the past before the first start: no logs


class StopOnClaim(History):
    """A history that has tracking stopped the moment a job-log claim is stored, as `rollback
    --wait` or a leaving MCP client does when it sees the claim (scheduled from the writer's
    thread, so the stop lands while the tracker still awaits this write)."""

    def __init__(self, path: Path, stop: asyncio.Event) -> None:
        super().__init__(path)
        self.stop = stop
        self.loop = asyncio.get_running_loop()

    def apply(
        self,
        creates: Sequence[tuple[Deploy, Sequence[NewEvent]]] = (),
        events: Sequence[NewEvent] = (),
    ) -> ApplyResult:
        result = super().apply(creates, events)
        if any(":joblog:" in event.event_id for event in events if event.event_id):
            self.loop.call_soon_threadsafe(self.stop.set)
        return result


async def test_a_claimed_job_log_is_written_even_when_tracking_stops_right_after_the_claim(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    claimed = asyncio.Event()
    history = StopOnClaim(tmp_path / "history.json", claimed)
    async with tracking(sandbox, clock, tmp_path, history=history) as (service, updates):
        await updates.wait(health_is(Health.OK))
        world.push(REPO, "production", "success")
        async with asyncio.timeout(20):
            await claimed.wait()
        await service.stop()  # the tracker is still inside the write that stored the claim
    (record,) = [r for r in history.records(REPO, "production") if logged_jobs(r)]
    lines = spool(tmp_path, record.id)
    claims = [e for e in record.events if ":joblog:" in (e.event_id or "")]
    assert sum(e.data["lines"] for e in claims) == len(lines) > 0  # no claim without its log
