"""Fixtures for tests against the sandbox VMs (real SSH on 127.0.0.1, through our client).

A test module asks for them with `pytest_plugins = ["tests.integration.vm_fixtures"]`. `vms`
serves the seeded `world` (from `tests.world_fixtures`), `target(vm, **changes)` is our
client's view of one VM (the sandbox's key and known_hosts; `changes` replace SshTarget fields).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources import ssh

pytest_plugins = ["tests.world_fixtures"]


@pytest.fixture
async def vms(world: World, tmp_path: Path) -> AsyncIterator[VmSandbox]:
    sandbox = VmSandbox(world, tmp_path / "vm-keys")
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture
def target(vms: VmSandbox) -> Callable[..., ssh.SshTarget]:
    def make(vm: str, **changes: Any) -> ssh.SshTarget:
        found = ssh.parse_target(
            vms.host_spec(vm), identity_file=vms.client_key_path, known_hosts=vms.known_hosts_path
        )
        return replace(found, **changes)

    return make
