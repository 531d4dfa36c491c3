"""The `[ssh]` table and how a target is resolved through an OpenSSH client config file (the
connections themselves are tested against real sshd in tests/integration/)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vmkit_tui.config import ConfigError, parse_config
from vmkit_tui.service import DeployService
from vmkit_tui.sources.ssh import SshOptions, SshTarget
from vmkit_tui.sources.ssh.ssh_config import SshConfigError, resolve
from vmkit_tui.store.history import AsyncHistory, History


def test_ssh_config_defaults_to_the_users_file_and_empty_turns_it_off(tmp_path: Path) -> None:
    assert parse_config({}).ssh.config == Path("~/.ssh/config")
    assert parse_config({"ssh": {"config": ""}}).ssh.config is None
    custom = parse_config({"ssh": {"config": "~/work/ssh_config"}}).ssh.config
    assert custom == Path("~/work/ssh_config").expanduser()
    with pytest.raises(ConfigError, match=r"^ssh\.config: expected a string"):
        parse_config({"ssh": {"config": False}})
    with pytest.raises(ConfigError, match=r"^ssh\.agent: unknown key"):
        parse_config({"ssh": {"agent": True}})


def test_the_service_connects_with_the_configs_ssh_settings(tmp_path: Path) -> None:
    config = parse_config({"ssh": {"config": str(tmp_path / "cfg")}})
    service = DeployService(config, AsyncHistory(History(tmp_path / "h.json")), tmp_path)
    assert service.ssh_options().ssh_config == tmp_path / "cfg"
    hermetic = SshOptions(ssh_config=None)
    given = DeployService(
        config, AsyncHistory(History(tmp_path / "h.json")), tmp_path, ssh_options=hermetic
    )
    shown = given.ssh_options()  # the given options, with the command log attached
    assert replace(shown, calls=hermetic.calls) == hermetic and shown.calls is given.calls


def test_route_adds_the_configs_known_hosts_after_vmkits_own(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host web-1\n  HostName 10.0.0.5\n  User deploy\n  Port 2222\n"
        f"  UserKnownHostsFile {tmp_path / 'a'} {tmp_path / 'b'}\n"
        "  GlobalKnownHostsFile none\n"
    )
    own = tmp_path / "own"
    route = resolve(SshTarget(None, "web-1", known_hosts=own), SshOptions(ssh_config=config))
    assert (route.target.user, route.target.host, route.target.port) == ("deploy", "10.0.0.5", 2222)
    assert route.known_hosts == (own, tmp_path / "a", tmp_path / "b")
    written = resolve(SshTarget("ops", "web-1", 22), SshOptions(ssh_config=config)).target
    assert (written.user, written.port) == ("ops", 22)  # what vmkit's config says wins
    plain = resolve(SshTarget(None, "web-1", known_hosts=own), SshOptions(ssh_config=None))
    assert (plain.target.host, plain.target.port, plain.known_hosts) == ("web-1", 22, (own,))


def test_a_missing_ssh_config_file_the_user_named_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SshConfigError, match="cannot read the SSH config file"):
        resolve(SshTarget(None, "web-1"), SshOptions(ssh_config=tmp_path / "nope"))
