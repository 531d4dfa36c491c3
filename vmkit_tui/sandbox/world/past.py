"""The seeded past of a sandbox world: weeks of pushes, failures, cancels and rollbacks.

Events are generated per environment, then replayed in time order through the same machinery
as live actions (`World._create_run`, `World._cancel`), so the past obeys the same rules as the
present: concurrency, locks, VM outages, GHCR contents. Every environment's history holds every
outcome (success, each failure scenario, a cancel) and rollback runs; each repo has migration
commits and an image deleted from GHCR that a later rollback trips over.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.github import Run
from vmkit_tui.sandbox.world.scenarios import SCENARIOS
from vmkit_tui.sandbox.world.vms import _ContainerRecord

if TYPE_CHECKING:
    from vmkit_tui.sandbox.world.environments import _Env
    from vmkit_tui.sandbox.world.github import Repo
    from vmkit_tui.sandbox.world.world import World

_FAILURES = tuple(name for name in SCENARIOS if name != "success")
_MIN_GAP = 15 * 60  # seconds between two runs of one environment: they never overlap


@dataclass(slots=True)
class _Event:
    at: datetime
    env: _Env
    kind: str  # "push" | "rollback" | "rollback_gone" | "delete_images"
    scenario: str = "success"
    cancel: bool = False
    keep_lock: bool = False  # a lock_held run whose lock is still held today


def seed_history(world: World, profile: str) -> None:
    rng = world._rng
    now = world.created_at
    demo = profile == "demo"
    specs = seed_data.DEMO_REPOS if demo else seed_data.SMALL_REPOS
    span = timedelta(days=rng.uniform(21, 35) if demo else rng.uniform(4, 7))
    start = now - span
    events: list[_Event] = []
    in_progress: _Env | None = None
    for repo_index, spec in enumerate(specs):
        repo = world._add_repo(spec, start - timedelta(days=rng.uniform(120, 400)))
        envs = [
            world._add_environment(repo, spec, name, count) for name, count in spec.environments
        ]
        _bootstrap(world, repo, envs, start, rng)
        for env_index, env in enumerate(envs):
            count = rng.randint(20, 60) if demo else rng.randint(5, 8)
            final_lock = demo and repo_index == 1 and env.name == "staging"
            events.extend(_env_events(rng, env, start, now, count, final_lock=final_lock))
            if demo and repo_index == 0 and env_index == 1:
                in_progress = env
        events.append(_Event(start + span * rng.uniform(0.35, 0.5), envs[0], "delete_images"))
        events.append(_Event(start + span * rng.uniform(0.6, 0.9), envs[0], "rollback_gone"))
    events = [event for event in _spread(events) if event.at < now - timedelta(minutes=20)]
    for event in events:
        _replay(world, rng, event)
    if demo:
        _removed_by_hand(world, now - timedelta(minutes=10))
    for repo in world.repos.values():
        _add_hotfix_branch(world, repo, rng)
    if in_progress is not None:  # the demo opens with a deploy under way
        _push(world, rng, in_progress, now - timedelta(seconds=rng.uniform(35, 60)), "success")
    world._moments = sorted(moment for moment in world._moments if moment > now)


def _removed_by_hand(world: World, at: datetime) -> None:
    """Someone ran `docker rm` on one host of the first multi-host environment: its newest
    kept container is gone there, so `kamal rollback` to it fails though other hosts keep it."""
    env = next((env for env in world._envs.values() if len(env.target.hosts) > 1), None)
    if env is None:
        return
    vm = env.target.hosts[-1].vm
    kept = world._retained_at(vm, at)
    if kept:
        for record in world._containers[vm]:
            if record.sha == kept[0] and record.started_at <= at:
                record.removed_at = at


def _bootstrap(
    world: World, repo: Repo, envs: list[_Env], start: datetime, rng: random.Random
) -> None:
    """The first commit, its image, and that version live on every VM (`kamal setup`)."""
    person = rng.choice(seed_data.PEOPLE)
    root_date = start - timedelta(days=rng.uniform(2, 6))
    root = world._add_commit(
        repo,
        message="Deploy with Kamal to VMKit",
        author=person,
        date=root_date,
        files=("config/deploy.yml", ".kamal/secrets", ".github/workflows/deploy.yml", "Procfile"),
        parent=None,
    )
    for branch in {"main", *(env.branch for env in envs)}:
        repo.branches[branch] = root.sha
    digest = f"sha256:{rng.getrandbits(256):064x}"
    world._images[repo.full_name].append((root_date, root.sha, "seed", 200_000_000, digest))
    booted = root_date + timedelta(hours=1)
    for env in envs:
        for host in env.target.hosts:
            name = env.target.container_name(root.sha)
            world._containers[host.vm].append(_ContainerRecord(name, root.sha, booted, "seed"))
            world._live[host.vm].append((booted, next(world._seq), root.sha, "seed"))


def _env_events(
    rng: random.Random, env: _Env, start: datetime, now: datetime, count: int, *, final_lock: bool
) -> list[_Event]:
    """`count` runs between `start` and an hour ago, every outcome among them."""
    end = now - timedelta(hours=1)
    seconds = (end - start).total_seconds()
    times = sorted(start + timedelta(seconds=rng.uniform(0, seconds)) for _ in range(count))
    kinds = ["push"] * count
    scenarios = ["success"] * count
    cancels = [False] * count
    slots = list(range(2, count))
    rng.shuffle(slots)
    mandatory = [*_FAILURES, "cancel"]
    rng.shuffle(mandatory)  # a short history (the small profile) gets a varied few
    for slot, outcome in zip(slots, mandatory, strict=False):
        if outcome == "cancel":
            cancels[slot] = True
        else:
            scenarios[slot] = outcome
    for slot in slots[len(mandatory) :]:
        roll = rng.random()
        if roll < 0.12:
            kinds[slot] = "rollback"
        elif roll < 0.2:
            scenarios[slot] = rng.choice(_FAILURES)
        elif roll < 0.23:
            cancels[slot] = True
    events = [
        _Event(at, env, kind, scenario, cancel)
        for at, kind, scenario, cancel in zip(times, kinds, scenarios, cancels, strict=True)
    ]
    if final_lock:
        events.append(_Event(end, env, "push", "lock_held", keep_lock=True))
    return events


def _spread(events: list[_Event]) -> list[_Event]:
    """Push each environment's runs apart so that one ends long before the next begins."""
    last: dict[int, datetime] = {}
    for event in events:
        key = id(event.env)
        if (
            event.kind != "delete_images"
            and key in last
            and (event.at - last[key]).total_seconds() < _MIN_GAP
        ):
            event.at = last[key] + timedelta(seconds=_MIN_GAP)
        if event.kind != "delete_images":
            last[key] = event.at
    return sorted(events, key=lambda event: event.at)


def _replay(world: World, rng: random.Random, event: _Event) -> None:
    if event.kind == "delete_images":
        _delete_images(world, rng, event)
    elif event.kind == "push":
        run = _push(world, rng, event.env, event.at, event.scenario, keep_lock=event.keep_lock)
        if event.cancel:
            _cancel_during(world, rng, run)
    else:
        _rollback(world, rng, event)


def _push(
    world: World,
    rng: random.Random,
    env: _Env,
    at: datetime,
    scenario: str,
    *,
    keep_lock: bool = False,
) -> Run:
    repo = env.repo
    person = rng.choice(seed_data.PEOPLE)
    latest = max(repo.commits, key=lambda commit: commit.date)
    if env.name == "production" and repo.branches.get("main") != latest.sha and rng.random() < 0.7:
        commit = latest  # promote: main fast-forwards to what staging already runs
    else:
        migration = None
        message = seed_data.commit_message(rng)
        if rng.random() < 0.12 or not any(
            name.startswith(repo.stack.migration_dir)
            for commit in repo.commits
            for name in commit.files
        ):
            message, migration, _ = rng.choice(seed_data.MIGRATIONS)
        date = at - timedelta(seconds=rng.uniform(20, 600))
        commit = world._add_commit(
            repo,
            message=message,
            author=person,
            date=date,
            files=world._new_commit_files(repo, rng, date, migration),
            parent=latest.sha,
        )
    run = world._push_run(env, commit, at, scenario)
    if not keep_lock:  # the holder releases the lock before the next deploy
        release = world._plans[run.id].completed_at + timedelta(seconds=rng.uniform(300, 700))
        for interval in world._locks[(repo.full_name, env.name)]:
            if interval.owner == run.id and interval.end is None:
                interval.end = release
    return run


def _cancel_during(world: World, rng: random.Random, run: Run) -> None:
    """Cancel a seeded run part-way: mostly before the swap, sometimes after it."""
    plan = world._plans[run.id]
    late = plan.swap_at is not None and rng.random() < 0.3
    low = plan.swap_at if late and plan.swap_at is not None else plan.started_at
    high = plan.completed_at if late else (plan.swap_at or plan.completed_at)
    at = low + (high - low) * rng.uniform(0.2, 0.8)
    world._cancel(run, at, force=False)


def _rollback(world: World, rng: random.Random, event: _Event) -> None:
    env, repo = event.env, event.env.repo
    primary = env.target.hosts[0].vm
    if event.kind == "rollback_gone":
        gone = [
            sha for sha, when in world._image_deleted[repo.full_name].items() if when <= event.at
        ]
        if not gone:
            return
        target = rng.choice(gone)
    else:
        history: list[str] = []
        for at, _, sha, _ in world._live[primary]:
            if at <= event.at and sha not in history[-1:]:
                history.append(sha)
        if len(history) < 2:
            return
        target = history[-2]  # the last good version before the current one
    person = rng.choice(seed_data.PEOPLE)
    request_id = f"{rng.getrandbits(48):012x}"
    title = f"Roll back {env.name} to {target[:7]} [{request_id}]"
    world._create_run(
        env,
        created_at=event.at,
        event="workflow_dispatch",
        head_sha=repo.branches[env.branch],
        head_branch=env.branch,
        sha=target,
        actor=person[1],
        title=title,
        scenario="success",
        request_id=request_id,
        inputs={"sha": target, "environment": env.name, "request_id": request_id},
    )


def _delete_images(world: World, rng: random.Random, event: _Event) -> None:
    """A GHCR retention clean-up: a few old images that no VM runs any more are deleted."""
    repo = event.env.repo
    live = {
        world._live_at(host.vm, event.at)
        for env in _envs_of(world, repo)
        for host in env.target.hosts
    }
    pushed = [
        sha for at, sha, *_ in world._images[repo.full_name] if at <= event.at and sha not in live
    ]
    for sha in pushed[1 : 1 + rng.randint(2, 4)]:
        world._image_deleted[repo.full_name][sha] = event.at


def _envs_of(world: World, repo: Repo) -> list[_Env]:
    return [env for (name, _), env in world._envs.items() if name == repo.full_name]


def _add_hotfix_branch(world: World, repo: Repo, rng: random.Random) -> None:
    """A branch that left main a while ago: comparing against it gives `diverged`."""
    line = sorted(repo.commits, key=lambda commit: commit.date)
    if len(line) < 4:
        return
    base = line[len(line) * 2 // 3]
    person = rng.choice(seed_data.PEOPLE)
    commit = world._add_commit(
        repo,
        message="Hotfix: raise checkout timeout",
        author=person,
        date=base.date + timedelta(hours=2),
        files=(repo.stack.source_files[0],),
        parent=base.sha,
    )
    repo.branches["hotfix/checkout-timeout"] = commit.sha
