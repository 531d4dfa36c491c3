"""The command log against the sandbox: real HTTP requests and real SSH commands are recorded
as they are sent (method and path, never a query or a token; host and the exact command)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.integration.test_github_client import REPO, WORKFLOW, SimTime, make_client
from vmkit_tui.domain.calls import GITHUB, SSH, CallLog
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources import ssh

from .vm_helpers import FAST

pytest_plugins = ["tests.integration.sandbox_fixtures", "tests.integration.vm_fixtures"]

pytestmark = pytest.mark.timeout(60)


async def test_github_requests_are_logged_with_path_status_cache_and_budget(
    sandbox: GitHubSandbox, clock: ManualClock, world: World
) -> None:
    calls = CallLog()
    async with make_client(sandbox, SimTime(clock)) as client:
        client.calls = calls
        await client.list_runs(REPO, WORKFLOW, per_page=100)
        await client.list_runs(REPO, WORKFLOW, per_page=100)
        run = next(r for r in world.runs(REPO) if world.run_status(r).status == "completed")
        job = world.jobs(run)[0]
        assert await client.job_log(REPO, job.id) is not None
    logged = calls.calls()
    assert [c.kind for c in logged] == [GITHUB] * len(logged) == [GITHUB] * len(sandbox.requests)
    path = f"GET /repos/{REPO}/actions/workflows/{WORKFLOW}/runs"
    first, again = logged[0], logged[1]
    assert (first.what, first.status, first.cached) == (path, 200, False)
    assert (again.what, again.status, again.cached, again.outcome) == (
        path,
        304,
        True,
        "304 cached",
    )
    assert first.remaining is not None and first.duration > 0
    assert first.host == sandbox.base_url.removeprefix("http://")
    blob = logged[-1]  # the signed log URL: its path, not its signature
    assert blob.what.startswith("GET /_blob/") and blob.status == 200
    signature = next(r for r in sandbox.requests if r.path.startswith("/_blob/")).query
    assert "sig=" in signature
    text = "\n".join(c.line() for c in logged)
    assert "?" not in text and "sig=" not in text and SANDBOX_TOKEN not in text


async def test_ssh_commands_are_logged_with_host_exact_command_and_exit_status(
    vms: VmSandbox, world: World, target: Callable[..., ssh.SshTarget]
) -> None:
    calls = CallLog()
    options = replace(FAST, calls=calls)
    vm = world.vms()[0].name
    host = target(vm)
    command = "docker ps --format '{{.Names}}' --filter label=service=x"
    result = await ssh.run(host, command, options=options)
    with pytest.raises(ssh.RemoteCommandNotFound):
        await ssh.run(host, "no-such-tool --flag", options=options)
    started, ended, _, failed_end = calls.calls()
    assert (started.kind, started.host, started.what) == (SSH, str(host), command)
    assert (started.status, started.note) == (None, "running")
    assert (ended.host, ended.what, ended.status, ended.outcome) == (
        str(host),
        command,
        result.exit_status,
        f"exit {result.exit_status}",
    )
    assert ended.duration >= started.duration
    assert (failed_end.what, failed_end.status) == ("no-such-tool --flag", 127)
    assert "not found" in failed_end.note


async def test_an_unreachable_host_is_logged_with_why(
    target: Callable[..., ssh.SshTarget], world: World
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    calls = CallLog()
    with pytest.raises(ssh.HostUnreachable):
        await ssh.run(
            target(world.vms()[0].name, port=port), "true", options=replace(FAST, calls=calls)
        )
    (call,) = calls.calls()
    assert call.status is None and call.note and call.what == "true"
