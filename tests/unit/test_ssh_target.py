"""Parsing and validating SSH targets (`domain.hosts` reads the text, as for config hosts;
tests/unit/test_hosts.py checks every surface agrees)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sources.ssh import SshTarget, parse_target


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("deploy@203.0.113.10", "deploy", "203.0.113.10", None),
        ("deploy@vm1.example.com:2222", "deploy", "vm1.example.com", 2222),
        ("root@localhost", "root", "localhost", None),
        ("deploy@[2001:db8::10]", "deploy", "2001:db8::10", None),
        ("deploy@[2001:db8::10]:2200", "deploy", "2001:db8::10", 2200),
        ("deploy@2001:db8::10", "deploy", "2001:db8::10", None),
        ("deploy@[::1]:22", "deploy", "::1", 22),
        ("web_user@vm-2", "web_user", "vm-2", None),
        # user and port left to ~/.ssh/config, as with `ssh web-1`
        ("web-1", None, "web-1", None),
        ("203.0.113.10:2222", None, "203.0.113.10", 2222),
    ],
)
def test_valid_targets(text: str, user: str | None, host: str, port: int | None) -> None:
    target = parse_target(text)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert parse_target(str(target)) == target  # str() round-trips


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@host",
        "deploy@",
        "deploy@host:",
        "deploy@host:0",
        "deploy@host:65536",
        "deploy@host:22x",
        "deploy@host:٢٢",
        "deploy@[2001:db8::10",
        "deploy@[2001:db8::10]x",
        "deploy@[not-v6]:22",
        "deploy@2001:db8::zz",
        "a@b@c",
        "-oProxyCommand=id@host",
        "-oProxyCommand=id",
        "deploy@-oProxyCommand=id",
        "deploy@host name",
        "de ploy@host",
        "deploy@host;id",
        "deploy@$(id)",
        "deploy@..",
        "deploy@host\n",
        " deploy@host",
    ],
)
def test_invalid_targets_get_one_clear_error(text: str) -> None:
    with pytest.raises(ValidationError, match=r"expected \[user@\]|invalid|out of range"):
        parse_target(text)


def test_keys_and_known_hosts_are_carried_and_default_safely(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known"
    target = parse_target("deploy@vm1:2222", identity_file=key, known_hosts=known)
    assert (target.identity_file, target.known_hosts_path) == (key, known)
    bare = SshTarget("deploy", "vm1")
    assert bare.known_hosts_path == Path("~/.ssh/known_hosts").expanduser()  # never "unchecked"
    assert bare.address == "vm1:22"
    assert SshTarget("deploy", "::1", 2200).address == "[::1]:2200"
    assert str(SshTarget("deploy", "::1", 2200)) == "deploy@[::1]:2200"


@pytest.mark.parametrize(
    "fields",
    [
        {"user": "deploy", "host": "vm1", "port": True},
        {"user": "deploy", "host": "vm1", "port": "22"},
        {"user": "deploy", "host": "", "port": 22},
        {"user": "", "host": "vm1", "port": 22},
    ],
)
def test_direct_construction_is_validated_too(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SshTarget(**fields)  # type: ignore[arg-type]


def test_importing_the_ssh_module_does_not_import_asyncssh() -> None:
    """The config module parses targets at startup; asyncssh's import cost waits for a
    connection."""
    code = "import sys, vmkit_tui.sources.ssh, vmkit_tui.sources.ssh.vm_log; assert 'asyncssh' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
