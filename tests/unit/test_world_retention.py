"""The sandbox's Kamal retention: pruning on each deploy, a container removed by hand, an image
deleted from GHCR, and `kamal rollback` needing the container on every host."""

from __future__ import annotations

import pytest

from tests.unit.test_world import REPO, finish
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.world_fixtures"]


def _deploy(world: World, clock: ManualClock, times: int) -> list[str]:
    shas = []
    for _ in range(times):
        run = world.push(REPO, "staging")
        finish(world, clock, run)
        clock.advance(5)
        shas.append(run.sha)
    return shas


def test_each_deploy_prunes_stopped_containers_beyond_five(
    world: World, clock: ManualClock
) -> None:
    shas = _deploy(world, clock, 7)
    env = world.environment(REPO, "staging")
    on_host = [c.sha for c in world.containers(env.deploy_host)]
    assert on_host == list(reversed(shas[1:]))  # the live one and five stopped: the rest removed
    assert shas[0] not in on_host


def test_a_container_removed_by_hand_is_gone_from_that_host_only(
    world: World, clock: ManualClock
) -> None:
    shas = _deploy(world, clock, 2)
    env = world.environment(REPO, "staging")
    world.remove_container(env.deploy_host, shas[0])
    assert shas[0] not in [c.sha for c in world.containers(env.deploy_host)]
    for other in env.vm_names[1:]:
        assert shas[0] in [c.sha for c in world.containers(other)]
    with pytest.raises(WorldError):
        world.remove_container(env.deploy_host, shas[1])  # running: not by hand


def test_deleting_an_image_takes_its_tag_out_of_ghcr(world: World, clock: ManualClock) -> None:
    shas = _deploy(world, clock, 1)
    world.delete_image(REPO, shas[0])
    assert shas[0] not in world.image_tags(REPO)
    assert all(shas[0] not in v.tags for v in world.package_versions(REPO))
    with pytest.raises(WorldError):
        world.delete_image(REPO, shas[0])
