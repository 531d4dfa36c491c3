"""`kamal_config` pointing at a local Kamal config: values derived on load, hand-written ones
win, and a bad or unresolvable derived value is a config error naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmkit_tui.__main__ import main
from vmkit_tui.config import ConfigError, HostSpec, load_config

KAMAL = """\
service: shop
image: acme/shop
servers:
  web:
    hosts:
      - 192.0.2.1: edge
      - 192.0.2.2
ssh:
  user: app
  keys: [~/.ssh/shop_ed25519]
proxy:
  healthcheck:
    path: /healthz
"""
STAGING = "servers:\n  web:\n    - <%= ENV['STAGING_HOST'] %>\nssh:\n  port: 2022\n"


def write(tmp_path: Path, environment: str) -> Path:
    (tmp_path / "app" / "config").mkdir(parents=True)
    (tmp_path / "app" / "config" / "deploy.yml").write_text(KAMAL)
    (tmp_path / "app" / "config" / "deploy.staging.yml").write_text(STAGING)
    path = tmp_path / "config.toml"
    path.write_text(
        '[[repos]]\nname = "acme/shop"\n\n[repos.environments.production]\n'
        'kamal_config = "./app/config/deploy.yml"\nhealth_path = "/written"\n\n'
        f"[repos.environments.staging]\n{environment}"
    )
    return path


def test_local_kamal_config_fills_what_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGING_HOST", "198.51.100.9")
    staging = 'kamal_config = "./app/config/deploy.yml"\ndestination = "staging"\n'
    config = load_config(write(tmp_path, staging))
    production, stage = config.repos[0].environments
    assert production.hosts == (HostSpec("app", "192.0.2.1"), HostSpec("app", "192.0.2.2"))
    assert production.service == "shop"
    assert production.health_path == "/written"  # written by hand: it wins
    assert production.identity_file == Path("~/.ssh/shop_ed25519").expanduser()
    assert stage.hosts == (HostSpec("app", "198.51.100.9", 2022),)
    assert stage.health_path == "/healthz"


def test_unresolvable_host_is_a_config_error_unless_hosts_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STAGING_HOST", raising=False)
    staging = 'kamal_config = "./app/config/deploy.yml"\ndestination = "staging"\n'
    path = write(tmp_path, staging)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        "repos[0].environments.staging.kamal_config: servers.web[0]: environment variable "
        "STAGING_HOST is not set (or write `hosts` by hand)"
    )
    assert main(["--config", str(path), "history"]) == 2
    assert "STAGING_HOST is not set" in capsys.readouterr().err
    written = write(tmp_path / "again", staging + 'hosts = ["deploy@203.0.113.5"]\n')
    assert load_config(written).repos[0].environments[1].hosts == (
        HostSpec("deploy", "203.0.113.5"),
    )


def test_a_bad_derived_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'kamal_config = "./app/config/deploy.yml"\n')
    (tmp_path / "app" / "config" / "deploy.yml").write_text(KAMAL.replace("shop\n", "Sh op!\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(
        "repos[0].environments.production.kamal_config: derived service: expected a Kamal "
        'service name, got "Sh op!"'
    )


def test_a_missing_kamal_file_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'kamal_config = "~/nowhere/deploy.yml"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "repos[0].environments.staging.kamal_config: cannot read" in str(caught.value)
    assert "No such file or directory" in str(caught.value)
