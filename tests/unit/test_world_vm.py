"""The VM side of the world: lines that follow the run's phase, follow streams, Kamal over SSH."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta

import pytest

from tests.world_fixtures import START
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.vms import VmLine
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.world_fixtures"]
REPO = "acme/my-fastapi-app"


def proxy_messages(world: World, vm: str, since: datetime) -> list[str]:
    return [
        json.loads(line.text)["msg"]
        for line in world.vm_lines(vm, "kamal-proxy")
        if line.at > since
    ]


def test_vm_lines_follow_the_run_phase(world: World, clock: ManualClock) -> None:
    env = world.environment(REPO, "staging")
    vm = env.deploy_host
    run = world.push(REPO, "staging")
    plan = world._plans[run.id]
    assert plan.swap_at is not None and plan.healthy_at is not None
    since = run.created_at
    clock.set(plan.swap_at - timedelta(seconds=0.01))
    assert "Deploying" not in proxy_messages(world, vm, since)  # still building and pulling
    clock.set(plan.swap_at)
    assert "Deploying" in proxy_messages(world, vm, since)
    assert "Deployed" not in proxy_messages(world, vm, since)
    assert world.first_healthy_at(run) is None
    assert world.environment(REPO, "staging").live_sha != run.sha
    clock.set(plan.healthy_at)
    messages = proxy_messages(world, vm, since)
    assert messages.index("Deploying") < messages.index("Target health updated")
    healthy = next(
        json.loads(line.text)
        for line in world.vm_lines(vm, "kamal-proxy")
        if '"Target health updated"' in line.text and line.at > since
    )
    assert healthy["state"] == "healthy" and healthy["was"] == "adding"
    assert world.first_healthy_at(run) == plan.healthy_at
    assert world.environment(REPO, "staging").live_sha == run.sha  # traffic switches when healthy
    assert world.run_status(run).status == "in_progress"  # the VM is ahead of the GitHub run
    clock.advance(10)
    assert "Deployed" in proxy_messages(world, vm, since)
    agent = [line.text for line in world.vm_lines(vm, "vmkit-agent") if line.at > since]
    assert any(text.startswith("new container") and "is healthy" in text for text in agent)
    assert any(text.startswith("traffic flowing to") for text in agent)
    app = [
        line
        for line in world.vm_lines(vm, "app")
        if line.at > since and line.container.endswith(run.sha)
    ]
    assert any("Uvicorn running on http://0.0.0.0:8000" in line.text for line in app)


def test_vm_lines_are_ordered_and_unknown_names_are_refused(world: World) -> None:
    vm = world.vms()[0].name
    for source in ("kamal-proxy", "vmkit-agent", "app"):
        lines = world.vm_lines(vm, source)
        assert lines and all(isinstance(line, VmLine) for line in lines)
        assert [line.at for line in lines] == sorted(line.at for line in lines)
    with pytest.raises(WorldError):
        world.vm_lines(vm, "syslog")
    with pytest.raises(WorldError):
        world.vm("no-such-vm")


async def test_follow_vm_yields_existing_then_new_lines_as_the_clock_moves(
    world: World, clock: ManualClock
) -> None:
    vm = world.environment(REPO, "production").deploy_host
    received: list[VmLine] = []
    arrived = asyncio.Event()

    async def follow() -> None:
        async for line in world.follow_vm(
            vm, "kamal-proxy", since=clock.now() - timedelta(days=30)
        ):
            received.append(line)
            arrived.set()

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(arrived.wait(), timeout=2)
        history = len(received)
        assert history == len(
            [
                line
                for line in world.vm_lines(vm, "kamal-proxy")
                if line.at > clock.now() - timedelta(days=30)
            ]
        )
        run = world.push(REPO, "production")
        swap = world._plans[run.id].swap_at
        assert swap is not None
        arrived.clear()
        clock.set(swap + timedelta(seconds=5))
        await asyncio.wait_for(arrived.wait(), timeout=2)

        async def deployed_seen() -> None:
            while not any('"msg":"Deploying"' in line.text for line in received[history:]):
                arrived.clear()
                await arrived.wait()

        await asyncio.wait_for(deployed_seen(), timeout=2)
        fresh = received[history:]
        assert all(line.at > received[history - 1].at for line in fresh)
        assert len({(line.at, line.text) for line in received}) == len(received)  # no repeats
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_vm_emits_heartbeats_for_followers(world: World, clock: ManualClock) -> None:
    vm = world.environment(REPO, "production").deploy_host
    received: list[VmLine] = []
    got = asyncio.Event()

    async def follow() -> None:
        async for line in world.follow_vm(vm, "vmkit-agent", since=clock.now()):
            received.append(line)
            got.set()

    task = asyncio.create_task(follow())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert received == []  # nothing new yet: the follower waits, it does not spin
        clock.advance(61)
        await asyncio.wait_for(got.wait(), timeout=2)
        assert received[0].text.startswith("heartbeat: ")
        assert world.environment(REPO, "production").live_sha in received[0].text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_changed_wakes_on_actions_and_on_scheduled_moments_only(
    world: World, clock: ManualClock
) -> None:
    assert world.next_change_at() is None  # the small world is at rest
    waiter = asyncio.create_task(world.changed())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiter.done()
    run = world.push(REPO, "staging")
    await asyncio.wait_for(waiter, timeout=1)
    moment = world.next_change_at()
    assert moment is not None and moment > clock.now()
    waiter = asyncio.create_task(world.changed())
    await asyncio.sleep(0)
    clock.set(moment - timedelta(microseconds=1))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.set(moment)
    await asyncio.wait_for(waiter, timeout=1)
    assert world.run_status(run).status in ("queued", "in_progress")


async def test_kamal_rollback_of_a_retained_version_swaps_on_the_vm(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "staging")
    target = env.retained[0]
    execution = world.start_kamal(env.deploy_host, ["kamal", "rollback", target])
    assert execution.exit_status is None
    lines = [line async for line in _consume(execution.lines(), clock)]
    assert execution.exit_status == 0 and await execution.wait() == 0
    text = "\n".join(lines)
    assert "Acquiring the deploy lock..." in text
    assert f"Start container with version {target}" in text
    assert "Running docker exec kamal-proxy kamal-proxy deploy" in text
    assert "docker pull" not in text  # rollback never pulls
    assert lines[-1].strip().startswith("Finished all in")
    assert world.environment(REPO, "staging").live_sha == target
    assert "Deployed" in proxy_messages(world, env.deploy_host, START)


async def test_kamal_rollback_of_a_pruned_version_says_so_and_exits_zero(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "staging")
    missing = "f" * 40
    execution = world.start_kamal(env.deploy_host, ["kamal", "rollback", missing, "-d", "staging"])
    lines = [line async for line in _consume(execution.lines(), clock)]
    assert (
        f"The app version '{missing}' is not available as a container "
        "(use 'kamal app containers' for available versions)"
    ) in lines
    assert execution.exit_status == 0
    assert world.environment(REPO, "staging").live_sha == env.live_sha


async def test_kamal_deploy_skip_push_pulls_and_fails_on_a_deleted_image(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "production")
    gone = next(iter(world._image_deleted[REPO]))
    execution = world.start_kamal(
        env.deploy_host, ["kamal", "deploy", "--skip-push", f"--version={gone}"]
    )
    lines = [line async for line in _consume(execution.lines(), clock)]
    assert any("manifest unknown" in line for line in lines)
    assert execution.exit_status == 1
    good = env.retained[-1]
    assert good in world.image_tags(REPO)
    execution = world.start_kamal(env.deploy_host, ["kamal", "deploy", "-P", "--version", good])
    lines = [line async for line in _consume(execution.lines(), clock)]
    assert any(f"docker pull {world.repo(REPO).image}:{good}" in line for line in lines)
    assert execution.exit_status == 0
    assert world.environment(REPO, "production").live_sha == good


async def test_kamal_lock_status_and_release(world: World, clock: ManualClock) -> None:
    env = world.environment(REPO, "staging")
    run = world.push(REPO, "staging", scenario="lock_held")
    for _ in range(900):
        if world.run_status(run).status == "completed":
            break
        clock.advance(1)
    status = world.start_kamal(env.deploy_host, ["kamal", "lock", "status"])
    lines = [line async for line in _consume(status.lines(), clock)]
    holder = world.environment(REPO, "staging").lock_holder
    assert holder is not None and any(line.startswith(f"Locked by: {holder} at ") for line in lines)
    release = world.start_kamal(env.deploy_host, ["kamal", "lock", "release"])
    lines = [line async for line in _consume(release.lines(), clock)]
    assert "Released the deploy lock" in lines
    assert world.environment(REPO, "staging").lock_holder is None
    status = world.start_kamal(env.deploy_host, ["kamal", "lock", "status"])
    assert "There is no deploy lock" in [line async for line in _consume(status.lines(), clock)]
    follow_up = world.push(REPO, "staging")
    assert follow_up.scenario == "success"


async def test_kamal_app_containers_lists_what_docker_ps_would(
    world: World, clock: ManualClock
) -> None:
    env = world.environment(REPO, "production")
    execution = world.start_kamal(env.deploy_host, ["kamal", "app", "containers"])
    lines = [line async for line in _consume(execution.lines(), clock)]
    assert lines[0] == f"App Host: {world.vm(env.deploy_host).address}"
    assert lines[1].split() == [
        "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"
    ]  # fmt: skip
    live = [line for line in lines if line.endswith(f"{env.service}-web-production-{env.live_sha}")]
    assert len(live) == 1 and re.search(r" ago {3,}Up (?:\d+ \w+|About an? \w+) {3,}", live[0])
    # Columns line up under their headers (docker's tabwriter), ages are relative.
    assert live[0].index(f"{env.service}-web-") == lines[1].index("NAMES")
    assert live[0].index(" ago ") + 1 < lines[1].index("STATUS") <= live[0].index("Up ")
    unknown = world.start_kamal(env.deploy_host, ["kamal", "destroy"])
    assert [line async for line in _consume(unknown.lines(), clock)] == [
        'Could not find command "destroy".'
    ]
    assert unknown.exit_status == 1


async def _consume(lines, clock: ManualClock):  # type: ignore[no-untyped-def]
    """Drive a KamalExecution's lines by moving the manual clock along as they are awaited."""
    iterator = lines.__aiter__()
    while True:
        step = asyncio.ensure_future(iterator.__anext__())
        for _ in range(10_000):
            await asyncio.sleep(0)
            if step.done():
                break
            clock.advance(0.25)
        try:
            yield step.result()
        except StopAsyncIteration:
            return


def test_docker_words_ages_like_docker() -> None:
    from datetime import timedelta

    from vmkit_tui.sandbox.world.kamal import docker_duration

    cases = {0.2: "Less than a second", 45: "45 seconds", 70: "About a minute",
             600: "10 minutes", 3600: "About an hour", 3 * 3600: "3 hours",
             50 * 3600: "2 days", 20 * 86400: "2 weeks", 90 * 86400: "3 months"}  # fmt: skip
    for seconds, words in cases.items():
        assert docker_duration(timedelta(seconds=seconds)) == words
