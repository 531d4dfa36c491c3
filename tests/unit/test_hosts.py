"""One reading of `[user@]host[:port]` everywhere a host is written: the config's `hosts` and
`deploy_host`, a Kamal config's servers (read directly and linked through `kamal_config`) and
an SSH target give the same parts for the same text, and the same one-line error, each under
its own key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmkit_tui.__main__ import main
from vmkit_tui.config import ConfigError, HostSpec, load_config, parse_config
from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sources.kamal_config import read_kamal_config
from vmkit_tui.sources.ssh import parse_target

Parts = tuple[str | None, str, int | None]

VALID: list[tuple[str, Parts]] = [
    ("deploy@203.0.113.10", ("deploy", "203.0.113.10", None)),
    ("deploy@vm1.example.com:2222", ("deploy", "vm1.example.com", 2222)),
    ("Deploy@web_1", ("Deploy", "web_1", None)),  # an SSH config alias may hold `_`
    ("web-1", (None, "web-1", None)),
    ("203.0.113.10:2222", (None, "203.0.113.10", 2222)),
    ("deploy@[2001:DB8::10]:2200", ("deploy", "2001:db8::10", 2200)),
    ("deploy@2001:db8:0::10", ("deploy", "2001:db8::10", None)),
    ("[::1]", (None, "::1", None)),
]
INVALID: list[tuple[str, str]] = [
    ("deploy@", ""),
    ("@host", ""),
    ("a@b@c", ""),
    ("deploy@[2001:db8::10", ""),
    ("deploy@[2001:db8::10]x", ""),
    ("deploy@host:", " (the port must be 1-65535)"),
    ("deploy@host:0", " (the port must be 1-65535)"),
    ("deploy@host:65536", " (the port must be 1-65535)"),
    ("deploy@host:22x", " (the port must be 1-65535)"),
    ("deploy@host:\u0662\u0662", " (the port must be 1-65535)"),  # Arabic-Indic digits
    ("-oProxyCommand=id", " (not a host name or address)"),
    ("deploy@-oProxyCommand=id", " (not a host name or address)"),
    ("deploy@host;id", " (not a host name or address)"),
    ("deploy@$(id)", " (not a host name or address)"),
    ("deploy@host name", " (not a host name or address)"),
    ("deploy@..", " (not a host name or address)"),
    ("deploy@vm-", " (not a host name or address)"),
    ("deploy@h\u00f3st", " (not a host name or address)"),
    ("de ploy@host", " (not a user name)"),
    ("deploy@[not-v6]:22", " (not an IPv6 address)"),
    ("deploy@[203.0.113.1]:22", " (not an IPv6 address)"),
    ("deploy@fe80::1%eth0", " (not an IPv6 address)"),
]


def config_parts(text: str) -> tuple[Parts, Parts]:
    env = {"hosts": [text], "deploy_host": text}
    found = parse_config({"repos": [{"name": "acme/shop", "environments": {"production": env}}]})
    production = found.repos[0].environments[0]
    assert production.deploy_host is not None
    return vars_of(production.hosts[0]), vars_of(production.deploy_host)


def vars_of(spec: HostSpec) -> Parts:
    return (spec.user, spec.host, spec.port)


def kamal(text: str) -> str:
    return f"service: shop\nimage: acme/shop\nservers:\n  - {json.dumps(text)}\n"


@pytest.mark.parametrize(("text", "parts"), VALID)
def test_every_surface_reads_a_host_alike(text: str, parts: Parts) -> None:
    assert vars_of(HostSpec.parse(text)) == parts
    assert config_parts(text) == (parts, parts)
    target = parse_target(text)
    assert (target.user, target.host, target.port) == parts
    settings = read_kamal_config(kamal(text), environ={})
    assert settings.problems == ()
    (host,) = settings.hosts
    assert (host.user, host.host, host.port) == parts
    assert HostSpec.parse(str(HostSpec(*parts))).host == parts[1]  # written back, read again


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_every_surface_refuses_a_bad_host_in_one_line_naming_where(
    text: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = f'expected [user@]host[:port], got "{text}"{why}'
    with pytest.raises(ValidationError) as parsed:
        HostSpec.parse(text)
    assert str(parsed.value) == message
    with pytest.raises(ValidationError) as targeted:
        parse_target(text)
    assert str(targeted.value) == message
    for key in ("hosts", "deploy_host"):
        value = [text] if key == "hosts" else text
        env = {key: value}
        with pytest.raises(ConfigError) as configured:
            parse_config({"repos": [{"name": "acme/shop", "environments": {"production": env}}]})
        where = "hosts[0]" if key == "hosts" else key
        assert str(configured.value) == f"repos[0].environments.production.{where}: {message}"
    assert read_kamal_config(kamal(text), environ={}).problems == (f"servers[0]: {message}",)

    (tmp_path / "deploy.yml").write_text(kamal(text))
    config = tmp_path / "config.toml"
    config.write_text(
        '[[repos]]\nname = "acme/shop"\n[repos.environments.production]\n'
        'kamal_config = "./deploy.yml"\n'
    )
    linked = (
        "repos[0].environments.production.kamal_config: servers[0]: "
        f"{message} (or write `hosts` by hand)"
    )
    with pytest.raises(ConfigError) as loaded:
        load_config(config)
    assert str(loaded.value) == linked
    assert main(["--config", str(config), "history"]) == 2
    assert capsys.readouterr().err == f"vmkit-tui: {linked}\n"
