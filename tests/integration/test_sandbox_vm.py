"""The sandbox VMs over real SSH on 127.0.0.1, through vmkit-tui's own client (`ssh.py`)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest

from vmkit_tui.domain.text import plain
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources import ssh
from vmkit_tui.sources.ssh.commands import DEFAULT_STREAMS, CommandContext, kamal_rollback

from .vm_helpers import FAST, REPO, Reader, port_refuses, run_world, wait_until

pytest_plugins = ["tests.integration.vm_fixtures"]

pytestmark = pytest.mark.timeout(60)

Target = Callable[..., ssh.SshTarget]


def follow(target: ssh.SshTarget, source: str, since: object = None) -> Reader:
    spec = DEFAULT_STREAMS[source]
    return Reader(ssh.follow(target, spec, CommandContext(), since=since, options=FAST))  # type: ignore[arg-type]


def msg(text: str) -> str:
    return str(json.loads(text).get("msg", "")) if text.startswith("{") else ""


async def test_one_port_per_vm_with_key_files(vms: VmSandbox, world: World) -> None:
    names = [vm.name for vm in world.vms()]
    ports = {vms.port_of(name) for name in names}
    assert len(ports) == len(names) >= 2
    lines = vms.known_hosts_path.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(f"[127.0.0.1]:{p}" for p in ports)
    assert all(line.split()[1] == "ssh-ed25519" for line in lines)
    assert len({line.split()[2] for line in lines}) == 1  # one host key for all
    assert stat.S_IMODE(vms.client_key_path.stat().st_mode) == 0o600
    assert vms.host_spec(names[0]) == f"deploy@127.0.0.1:{vms.port_of(names[0])}"


async def test_proxy_log_of_a_running_deploy(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    vm = world.environment(REPO, "staging").deploy_host
    run = world.push(REPO, "staging")
    reader = follow(target(vm), "kamal-proxy", since=run.created_at)
    try:
        await run_world(clock, lambda: "Deployed" in [msg(t) for t in reader.texts], step=2.0)
    finally:
        await reader.close()
    messages = [msg(text) for text in reader.texts]
    healthy = next(
        i
        for i, text in enumerate(reader.texts)
        if msg(text) == "Target health updated" and json.loads(text)["state"] == "healthy"
    )
    assert messages.index("Deploying") < healthy < messages.index("Deployed")
    assert "Healthcheck failed" in messages[messages.index("Deploying") : healthy]
    # Exactly the VM's lines, in order, with docker's timestamp as each record's time.
    expected = [line for line in world.vm_lines(vm, "kamal-proxy") if line.at >= run.created_at]
    got = [(r.at, r.source, r.text) for r in reader.records]
    assert got == [(line.at, "kamal-proxy", line.text) for line in expected[: len(got)]]
    assert reader.records[healthy].at == world.first_healthy_at(run)


async def test_agent_journal_and_app_container_logs(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    env = world.environment(REPO, "staging")
    run = world.push(REPO, "staging")
    agent = follow(target(env.deploy_host), "vmkit-agent", since=run.created_at)
    try:
        await run_world(clock, lambda: any("traffic flowing" in t for t in agent.texts))
    finally:
        await agent.close()
    assert any(t.startswith("new container") and "is healthy" in t for t in agent.texts)
    assert any(run.sha in t for t in agent.texts)
    # The app container of the new version, through `docker logs -- <container>`.
    app = ssh.follow(
        target(env.deploy_host),
        DEFAULT_STREAMS["app"],
        CommandContext(service=env.service, destination="staging", sha=run.sha),
        since=run.created_at,
        options=FAST,
    )
    reader = Reader(app)
    try:
        await reader.wait_for(lambda r: "0.0.0.0" in r.text)
    finally:
        await reader.close()
    assert {r.source for r in reader.records} == {"app"}
    with pytest.raises(ssh.RemoteCommandFailed, match="No such container"):
        async for _ in ssh.follow(
            target(env.deploy_host),
            DEFAULT_STREAMS["app"],
            CommandContext(service="ghost", destination="staging", sha="0" * 40),
            options=FAST,
        ):
            pass


async def test_closing_the_stream_ends_the_server_session_and_its_follower(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    idle = clock.pending_sleepers
    reader = follow(target(vm), "kamal-proxy", since=clock.now() - timedelta(days=60))
    await reader.wait_for(lambda r: True)
    await wait_until(lambda: clock.pending_sleepers > idle, what="the world follower to wait")
    assert vms.session_count(vm) == 1
    await reader.close()
    await wait_until(lambda: vms.session_count() == 0, what="the session to end")
    await wait_until(lambda: clock.pending_sleepers == idle, what="the follower to end")


@pytest.mark.parametrize("source", ["kamal-proxy", "vmkit-agent"])
async def test_reconnect_after_a_drop_resumes_without_duplicates(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target, source: str
) -> None:
    vm = world.environment(REPO, "staging").deploy_host
    run = world.push(REPO, "staging")
    reader = follow(target(vm), source, since=run.created_at)
    try:
        await run_world(clock, lambda: len(reader.records) >= 3)
        assert vms.drop_connections(vm) == 1
        await reader.wait_for(lambda r: r.source == ssh.VMKIT_SOURCE)
        before = len(reader.records)
        await run_world(clock, lambda: len(reader.records) >= before + 3)
    finally:
        await reader.close()
    markers = [r for r in reader.records if r.source == ssh.VMKIT_SOURCE]
    assert len(markers) == 1 and "connection lost" in markers[0].text
    lines = [(r.at, r.text) for r in reader.records if r.source == source]
    expected = [(line.at, line.text) for line in world.vm_lines(vm, source)]
    start = expected.index(lines[0])
    assert lines == expected[start : start + len(lines)]  # nothing repeated, nothing lost


async def test_offline_vm_refuses_then_comes_back_on_the_same_port(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    port = vms.port_of(vm)
    reader = follow(target(vm), "kamal-proxy", since=clock.now() - timedelta(days=60))
    try:
        await reader.wait_for(lambda r: True)
        world.set_vm_offline(vm, True)  # the monitor notices the world change
        await wait_until(lambda: port_refuses(port), what="the listener to close")
        await wait_until(lambda: vms.session_count(vm) == 0, what="the connection to be cut")
        with pytest.raises(ssh.HostUnreachable, match="connection refused"):
            await ssh.run(target(vm), "true", options=FAST)
        world.set_vm_offline(vm, False)
        await reader.wait_for(lambda r: r.source == ssh.VMKIT_SOURCE, timeout=10)
    finally:
        await reader.close()
    assert vms.port_of(vm) == port
    assert sum(r.source == ssh.VMKIT_SOURCE for r in reader.records) == 1


async def test_a_vm_offline_at_start_gets_its_port_when_it_comes_up(
    world: World, tmp_path: Path
) -> None:
    vm = world.vms()[0].name
    world.set_vm_offline(vm, True)
    async with VmSandbox(world, tmp_path / "keys") as sandbox:
        port = sandbox.port_of(vm)
        assert f"[127.0.0.1]:{port} " in sandbox.known_hosts_path.read_text()
        assert port_refuses(port)
        world.set_vm_offline(vm, False)
        await sandbox.refresh()
        target = ssh.parse_target(
            sandbox.host_spec(vm),
            identity_file=sandbox.client_key_path,
            known_hosts=sandbox.known_hosts_path,
        )
        with pytest.raises(ssh.RemoteCommandNotFound):  # reached the VM, trusted, logged in
            await ssh.run(target, "true", options=FAST)


async def test_auth_refused_and_wrong_user_are_authentication_errors(
    world: World, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    world.set_vm_auth_refused(vm, True)
    with pytest.raises(ssh.AuthenticationFailed, match="refused"):
        await ssh.run(target(vm), "true", options=FAST)
    world.set_vm_auth_refused(vm, False)
    with pytest.raises(ssh.RemoteCommandNotFound):  # logged in, then the command is unknown
        await ssh.run(target(vm), "true", options=FAST)
    with pytest.raises(ssh.AuthenticationFailed):
        await ssh.run(target(vm, user="root"), "true", options=FAST)


async def test_unknown_host_key_names_the_file_and_fingerprint(
    world: World, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    empty = vms.key_dir / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ssh.HostKeyRefused) as refused:
        await ssh.run(target(vm, known_hosts=empty), "true", options=FAST)
    host_key = asyncssh.read_public_key(str(vms.key_dir / "ssh_host_ed25519_key.pub"))
    assert refused.value.fingerprint == host_key.get_fingerprint("sha256")
    assert str(empty) in str(refused.value) and refused.value.fingerprint in str(refused.value)
    assert not refused.value.changed
    other = vms.key_dir / "other_known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other.write_text(f"[127.0.0.1]:{vms.port_of(vm)} {impostor}")
    with pytest.raises(ssh.HostKeyRefused, match="HOST KEY CHANGED") as changed:
        await ssh.run(target(vm, known_hosts=other), "true", options=FAST)
    assert changed.value.changed


async def test_unknown_command_is_not_found_with_exit_127(
    world: World, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    with pytest.raises(ssh.RemoteCommandNotFound) as missing:
        await ssh.run(target(vm), "uptime --pretty", options=FAST)
    assert missing.value.exit_status == 127
    assert missing.value.last_line == "sh: 1: uptime: not found"
    # A plain client (no guard) gets the same on stderr.
    async with asyncssh.connect(
        "127.0.0.1",
        vms.port_of(vm),
        username="deploy",
        client_keys=[str(vms.client_key_path)],
        known_hosts=str(vms.known_hosts_path),
        config=None,
        agent_path=None,
    ) as conn:
        result = await conn.run("rm -rf /", check=False)
    assert result.exit_status == 127 and result.stderr == "sh: 1: rm: not found\n"


async def test_hostile_bytes_are_data_and_a_megabyte_line_is_capped(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    vm = world.vms()[0].name
    reader = follow(target(vm), "kamal-proxy", since=clock.now() - timedelta(days=60))
    try:
        await reader.wait_for(lambda r: True)
        hostile = b"bad \xff\xfe utf-8 \x1b]52;c;SGVsbG8=\x07 [/] [@click=app.quit]x"
        assert vms.inject_line(vm, "kamal-proxy", hostile) == 1
        assert vms.inject_line(vm, "kamal-proxy", b"y" * 1_000_000) == 1
        await reader.wait_for(lambda r: "line truncated" in r.text)
        count = len(reader.records)
        await run_world(clock, lambda: len(reader.records) > count, step=5.0)  # still alive
    finally:
        await reader.close()
    bad = next(r for r in reader.records if r.text.startswith("bad "))
    assert "\ufffd\ufffd" in bad.text and "\x1b]52;c;SGVsbG8=\x07" in bad.text  # sent as is
    assert plain(bad.text).endswith("[/] [@click=app.quit]x")
    big = next(r for r in reader.records if "line truncated" in r.text)
    assert big.text.startswith("yyy") and len(big.text) < FAST.max_line_bytes + 100
    assert f"[line truncated: {1_000_000 + 31} bytes]" in big.text  # docker's stamp + the line


async def test_kamal_rollback_of_a_retained_version_and_of_a_missing_one(
    world: World, clock: ManualClock, vms: VmSandbox, target: Target
) -> None:
    env = world.environment(REPO, "production")
    assert env.retained, "the seeded world keeps stopped containers"
    retained = env.retained[0]
    host = target(env.deploy_host)
    rollback = asyncio.create_task(
        ssh.run(host, kamal_rollback(retained, destination="production"), options=FAST)
    )
    await run_world(clock, rollback.done)
    result = rollback.result()
    assert result.exit_status == 0
    assert any(line.startswith("  Finished all in") for line in result.lines)
    assert world.environment(REPO, "production").live_sha == retained

    now = world.environment(REPO, "production")
    gone = next(
        c.sha
        for c in world.repo(REPO).commits
        if c.sha not in now.retained and c.sha != now.live_sha
    )
    missing = asyncio.create_task(
        ssh.run(host, kamal_rollback(gone, destination="production"), options=FAST)
    )
    await run_world(clock, missing.done)
    result = missing.result()
    assert result.exit_status == 0  # Kamal prints the error and exits 0
    assert any("is not available as a container" in line for line in result.lines)
    assert world.environment(REPO, "production").live_sha == retained


async def test_stop_closes_every_port_and_leaves_no_task(
    world: World, clock: ManualClock, target: Target, vms: VmSandbox
) -> None:
    vm = world.vms()[0].name
    reader = follow(target(vm), "kamal-proxy", since=clock.now() - timedelta(days=60))
    await reader.wait_for(lambda r: True)
    await vms.stop()
    assert vms.session_count() == 0
    assert all(port_refuses(vms.port_of(v.name)) for v in world.vms())
    await reader.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
