"""SSH as OpenSSH users set it up, against REAL OpenSSH sshd servers on 127.0.0.1: a host
written as a `~/.ssh/config` alias, ProxyJump through a second sshd, hashed known_hosts
entries, and values from the config that are refused before any socket is opened."""

from __future__ import annotations

import dataclasses
import getpass
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ssh_fixtures import SSHD, TEST_OPTIONS, Sshd, wait_for
from vmkit_tui.sources.ssh import (
    ConnectionDropped,
    HostKeyRefused,
    SshError,
    SshOptions,
    SshTarget,
    run,
    stream,
)
from vmkit_tui.sources.ssh.ssh_config import SshConfigError

pytestmark = [
    pytest.mark.skipif(not SSHD.exists(), reason="OpenSSH server not installed (/usr/sbin/sshd)"),
    pytest.mark.timeout(60),
]

USER = getpass.getuser()


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd.start(tmp_path_factory.mktemp("vm"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd.start(tmp_path_factory.mktemp("jump"), extra=("AllowTcpForwarding yes",))
    try:
        yield server
    finally:
        server.stop()


def host_entry(alias: str, server: Sshd, *more: str) -> str:
    lines = [
        f"Host {alias}",
        "  HostName 127.0.0.1",
        f"  Port {server.port}",
        f"  User {USER}",
        f"  IdentityFile {server.user_key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {server.known_hosts}",
        *(f"  {line}" for line in more),
    ]
    return "\n".join(lines) + "\n"


def options_with(config: Path) -> SshOptions:
    return dataclasses.replace(TEST_OPTIONS, ssh_config=config)


def alias_target(alias: str, tmp_path: Path) -> SshTarget:
    """The host as a user writes it in vmkit's config: the alias only. vmkit's own known_hosts
    is empty, so the host key can only be trusted through the SSH config's file."""
    empty = tmp_path / "vmkit_known_hosts"
    empty.touch()
    return SshTarget(None, alias, known_hosts=empty)


async def test_a_host_alias_uses_hostname_port_user_and_identity_from_the_ssh_config(
    vm: Sshd, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(host_entry("web-1", vm))
    result = await run(
        alias_target("web-1", tmp_path),
        'echo "$USER $SSH_CONNECTION"',
        options=options_with(config),
    )
    user, _, _, server_ip, server_port = result.lines[0].split()
    assert (user, server_ip, int(server_port)) == (USER, "127.0.0.1", vm.port)


async def test_without_the_ssh_config_the_alias_means_nothing(vm: Sshd, tmp_path: Path) -> None:
    """The negative of the test above: the config file, not luck, made the alias work (the
    port the config names is then not used, so nothing answers on 22)."""
    config = tmp_path / "ssh_config"
    config.write_text(host_entry("127.0.0.1", vm))
    target = alias_target("127.0.0.1", tmp_path)
    result = await run(target, "echo $SSH_CONNECTION", options=options_with(config))
    assert result.lines[0].split()[3] == str(vm.port)
    with pytest.raises(SshError) as caught:
        await run(target, "true", options=TEST_OPTIONS)
    assert str(vm.port) not in str(caught.value) and "127.0.0.1:22" in str(caught.value)


async def test_proxyjump_runs_the_command_on_the_target_through_the_jump_host(
    vm: Sshd, jump: Sshd, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(host_entry("bastion", jump) + host_entry("app-1", vm, "ProxyJump bastion"))
    target = alias_target("app-1", tmp_path)
    records = stream(
        target,
        "echo $SSH_CONNECTION; while :; do echo tick; sleep 0.05; done",
        "app",
        options=options_with(config),
    )
    try:
        first = await anext(records)
        assert first.text.split()[3] == str(vm.port)  # it runs on the target
        assert first.host == "app-1"  # labelled as the user wrote the host
        assert jump.session_pids()  # logged in on the jump host
        jump.kill_sessions()  # cut the jump host: the target's stream must go with it
        with pytest.raises(ConnectionDropped):
            async for _ in records:
                pass
    finally:
        await records.aclose()
    result = await run(target, "echo done", options=options_with(config))
    assert result.lines == ["done"]
    wait_for(lambda: not jump.session_pids(), 10, "the jump connection to close with the target")


async def test_an_unknown_jump_host_key_is_refused_naming_the_jump_host(
    vm: Sshd, jump: Sshd, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger_known_hosts"
    stranger.touch()
    config = tmp_path / "ssh_config"
    config.write_text(
        host_entry("bastion", jump).replace(str(jump.known_hosts), str(stranger))
        + host_entry("app-1", vm, "ProxyJump bastion")
    )
    with pytest.raises(HostKeyRefused) as caught:
        await run(alias_target("app-1", tmp_path), "true", options=options_with(config))
    assert f"127.0.0.1:{jump.port}" in str(caught.value)
    assert jump.host_key.get_fingerprint("sha256") in str(caught.value)


async def test_hashed_known_hosts_entries_are_trusted(vm: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(vm.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|") and "127.0.0.1" not in known.read_text()
    result = await run(vm.target(known_hosts=known), "echo ok", options=TEST_OPTIONS)
    assert result.lines == ["ok"]


async def test_strict_host_key_checking_no_in_the_ssh_config_does_not_disable_checking(
    vm: Sshd, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        host_entry("web-1", vm, "StrictHostKeyChecking no").replace(
            f"UserKnownHostsFile {vm.known_hosts}", "UserKnownHostsFile /dev/null"
        )
    )
    with pytest.raises(HostKeyRefused, match="unknown host key"):
        await run(alias_target("web-1", tmp_path), "true", options=options_with(config))


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("HostName 127.0.0.1;id", ["invalid SSH host"]),
        ("Port 22x", ["SSH config error", "Port"]),
        ("HostName -oProxyCommand=id", ["invalid SSH host"]),
        ("User -oProxyCommand=id", ["invalid SSH user"]),
        ("Port 70000", ["out of range"]),
        ("ProxyJump bastion;id", ["ProxyJump", "not a host name or address"]),
        ("ProxyJump @bastion", ["ProxyJump", "expected [user@]host[:port]"]),
    ],
)
async def test_unsafe_values_in_the_ssh_config_are_refused_before_any_socket(
    tmp_path: Path, line: str, words: list[str]
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        config = tmp_path / "ssh_config"
        config.write_text(f"Host web-1\n  {line}\n  HostName 127.0.0.1\n  Port {port}\n")
        with pytest.raises(SshConfigError) as caught:
            await run(alias_target("web-1", tmp_path), "true", options=options_with(config))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert str(config) in str(caught.value) or "SSH config error" in str(caught.value)
    for word in words:
        assert word in str(caught.value)
