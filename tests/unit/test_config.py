"""Config validation: every mistake is one line naming the key path; exit status 2 from the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmkit_tui.__main__ import main
from vmkit_tui.config import (
    ConfigError,
    HostSpec,
    RollbackStrategy,
    load_config,
    resolve_config_path,
)

GOOD = """
[github]
api_url = "https://ghe.example.com/api/v3"

[[repos]]
name = "acme/storefront"

[repos.environments.production]
hosts = ["deploy@203.0.113.10", "deploy@[2001:db8::1]:2222"]
identity_file = "~/.ssh/id_ed25519"

[repos.environments.staging]
branch = "staging"
rollback = "kamal-ssh"
deploy_host = "ops@deploy.example.com:2200"
kamal_dir = "apps/storefront"
"""


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def error_of(tmp_path: Path, text: str, mode: int = 0o644) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text, mode))
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


def test_good_config_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.github.api_url == "https://ghe.example.com/api/v3"
    assert config.github.token is None
    repo = config.repo("acme/storefront")
    assert repo.image == "ghcr.io/acme/storefront"
    prod = repo.environment("production")
    assert prod.workflow == "deploy.yml" and prod.branch == "main"
    assert prod.rollback is RollbackStrategy.GITHUB
    assert prod.hosts == (
        HostSpec("deploy", "203.0.113.10"),
        HostSpec("deploy", "2001:db8::1", 2222),
    )
    assert str(prod.hosts[1]) == "deploy@[2001:db8::1]:2222"
    assert prod.identity_file == Path("~/.ssh/id_ed25519").expanduser()
    assert prod.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert prod.health_path == "/up" and prod.service == "storefront"
    staging = repo.environment("staging")
    assert staging.rollback is RollbackStrategy.KAMAL_SSH
    assert staging.deploy_host == HostSpec("ops", "deploy.example.com", 2200)
    assert prod.kamal_dir is None and staging.kamal_dir == "apps/storefront"


def test_github_defaults_when_section_missing(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[[repos]]\nname = "a/b"\n[repos.environments.prod]\n'))
    assert config.github.api_url == "https://api.github.com"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            'hosts = ["deploy@"]',
            'repos[0].environments.production.hosts[0]: expected [user@]host[:port], got "deploy@"',
        ),
        (
            'hosts = ["deploy@host:99999"]',
            "repos[0].environments.production.hosts[0]: expected [user@]host[:port]",
        ),
        (
            'hosts = ["-oProxyCommand=id"]',
            "repos[0].environments.production.hosts[0]: expected [user@]host[:port]",
        ),
        (
            'hosts = ["deploy@a;rm -rf /"]',
            "repos[0].environments.production.hosts[0]: expected [user@]host[:port]",
        ),
        (
            "hosts = [1]",
            "repos[0].environments.production.hosts[0]: expected a string, got an integer",
        ),
        (
            'hosts = "deploy@x"',
            "repos[0].environments.production.hosts: expected an array, got a string",
        ),
        (
            'rollback = "ftp"',
            'repos[0].environments.production.rollback: expected "github" or "kamal-ssh"',
        ),
        ('rollback = "kamal-ssh"', "repos[0].environments.production.deploy_host: required when"),
        ('colour = "red"', "repos[0].environments.production.colour: unknown key"),
        (
            'workflow = "../x.yml"',
            "repos[0].environments.production.workflow: expected a workflow file name",
        ),
        ('branch = "a..b"', "repos[0].environments.production.branch: expected a branch name"),
        ('health_path = "up"', "repos[0].environments.production.health_path: expected a URL path"),
        (
            "health_path = 5",
            "repos[0].environments.production.health_path: expected a string, got an integer",
        ),
        (
            'service = "-rm"',
            "repos[0].environments.production.service: expected a Kamal service name",
        ),
        (
            'streams = { shell = "sh" }',
            "repos[0].environments.production.streams.shell: unknown stream",
        ),
        (
            'kamal_dir = "apps/shop; id"',
            "repos[0].environments.production.kamal_dir: expected a directory on deploy_host",
        ),
        (
            'kamal_dir = "-shop"',
            "repos[0].environments.production.kamal_dir: expected a directory on deploy_host",
        ),
    ],
)
def test_environment_errors_name_the_key_path(tmp_path: Path, snippet: str, expected: str) -> None:
    text = f'[[repos]]\nname = "acme/storefront"\n[repos.environments.production]\n{snippet}\n'
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[repos]]\nname = "acme"\n[repos.environments.p]\n',
            'repos[0].name: expected owner/name, got "acme"',
        ),
        ("[[repos]]\n[repos.environments.p]\n", "repos[0].name: required key is missing"),
        ('[[repos]]\nname = "a/b"\n', "repos[0].environments: define at least one environment"),
        (
            '[[repos]]\nname = "a/b"\n[repos.environments."pro duction"]\n',
            "repos[0].environments.pro duction: environment names",
        ),
        (
            '[[repos]]\nname = "a/b"\nimage = "GHCR.io/A"\n[repos.environments.p]\n',
            "repos[0].image: expected an image",
        ),
        ('[github]\napi_url = "ftp://x"\n', "github.api_url: expected an http(s) URL"),
        ('[github]\ntokn = "x"\n', "github.tokn: unknown key"),
        ('[github]\ntoken = ""\n', "github.token: is empty"),
        ("repos = 3\n", "repos: expected an array, got an integer"),
        ("surprise = 1\n", "surprise: unknown key"),
        ('[ui]\nbell = "yes"\n', "ui.bell: expected a boolean, got a string"),
        (
            '[[repos]]\nname = "a/b"\n[repos.environments.p]\n[[repos]]\nname = "a/b"\n[repos.environments.q]\n',
            'repos[1].name: "a/b" is configured twice',
        ),
    ],
)
def test_structural_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[github]\napi_url = "https://x\n')
    assert "TOML syntax error at line 2, column" in message


def test_missing_file_points_to_the_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file.*vmkit-tui demo"):
        load_config(tmp_path / "nope.toml")


def test_token_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    text = '[github]\ntoken = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"\n'
    message = error_of(tmp_path, text, mode=0o644)
    assert "chmod 600" in message and "0644" in message
    assert "ghp_" not in message
    config = load_config(write(tmp_path, text, mode=0o600))
    assert config.github.token is not None
    assert "ghp_" not in repr(config) and "ghp_" not in str(config.github)


def test_config_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMKIT_CONFIG", str(tmp_path / "env.toml"))
    assert resolve_config_path(str(tmp_path / "cli.toml")) == tmp_path / "cli.toml"
    assert resolve_config_path(None) == tmp_path / "env.toml"
    monkeypatch.delenv("VMKIT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert resolve_config_path(None) == tmp_path / "xdg" / "vmkit" / "config.toml"


def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[[repos]]\nname = "acme/storefront"\n[repos.environments.production]\nhosts = ["deploy@"]\n',
    )
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert 'hosts[0]: expected [user@]host[:port], got "deploy@"' in err
    assert "Traceback" not in err


def test_no_directories_created_by_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    load_config(write(tmp_path, GOOD))
    assert not (tmp_path / "data").exists()
    assert os.listdir(tmp_path) == ["config.toml"]
