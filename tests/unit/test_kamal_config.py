"""Reading Kamal configs: what needs no oracle (tags, unresolvable ERB, hostile YAML)."""

from __future__ import annotations

import pytest

from vmkit_tui.sources.kamal_config import (
    KamalConfigError,
    destination_file,
    destination_of,
    read_kamal_config,
)

BASE = """\
service: app
image: acme/app
servers:
  web:
    hosts:
      - 10.0.0.1: [edge, eu]
      - 10.0.0.2: edge
      - deploy@10.0.0.3:2222
"""


def test_tags_and_host_parts_per_entry() -> None:
    hosts = read_kamal_config(BASE, environ={}).roles["web"]
    assert [(h.host, h.tags) for h in hosts] == [
        ("10.0.0.1", ("edge", "eu")),
        ("10.0.0.2", ("edge",)),
        ("10.0.0.3", ()),
    ]
    assert (hosts[2].user, hosts[2].port) == ("deploy", 2222)


def test_unresolvable_erb_is_named_by_key_path_and_never_run() -> None:
    text = """\
service: app
image: <%= `touch /tmp/should-not-exist` %>
servers:
  - <%= ENV["MISSING_HOST"] %>
  - 10.0.0.9
ssh:
  user: <%= ENV.fetch("DEPLOY_USER") %>
<% if ENV["X"] %>
proxy:
  healthcheck:
    path: /x
<% end %>
"""
    settings = read_kamal_config(text, environ={})
    assert settings.unresolved == (
        'config/deploy.yml: Ruby statement not evaluated: <% if ENV["X"] %>',
        "config/deploy.yml: Ruby statement not evaluated: <% end %>",
        "image: Ruby expression not evaluated: <%= `touch /tmp/should-not-exist` %>",
        "servers[0]: environment variable MISSING_HOST is not set",
        "ssh.user: environment variable DEPLOY_USER is not set",
    )
    assert settings.image is None
    assert [h.entry for h in settings.hosts] == ["10.0.0.9"]
    assert settings.ssh.user == "root"  # Kamal's default stands in; the line above says why


def test_an_unresolved_ssh_key_is_named_and_never_offered_as_a_key_path() -> None:
    text = BASE + 'ssh:\n  keys:\n    - <%= ENV["DEPLOY_KEY"] %>\n    - ~/.ssh/id_ed25519\n'
    settings = read_kamal_config(text, environ={})
    assert settings.unresolved == ("ssh.keys[0]: environment variable DEPLOY_KEY is not set",)
    assert settings.ssh.keys == ("~/.ssh/id_ed25519",)


def test_destination_file_merges_tables_and_replaces_lists() -> None:
    staging = "servers:\n  web:\n    hosts: [10.1.0.1]\nssh:\n  port: 2022\n"
    settings = read_kamal_config(
        BASE + "ssh:\n  user: app\n", staging, destination="staging", environ={}
    )
    assert [h.entry for h in settings.hosts] == ["10.1.0.1"]
    assert (settings.ssh.user, settings.ssh.port) == ("app", 2022)
    assert settings.unresolved == ()


@pytest.mark.parametrize(
    ("base", "file"),
    [
        ("config/deploy.yml", "config/deploy.staging.yml"),
        ("config/deploy.yaml", "config/deploy.staging.yml"),  # Kamal reads .yml (checked by hand)
        ("/srv/app.v2/config/shop.yml", "/srv/app.v2/config/shop.staging.yml"),
        ("deploy.yml", "deploy.staging.yml"),
    ],
)
def test_one_name_for_the_destination_file_both_ways(base: str, file: str) -> None:
    assert destination_file(base, "staging") == file
    assert destination_of(base, file) == "staging"
    assert destination_of(base, base) is None
    assert destination_of(base, file.replace("staging", "-bad")) is None  # not a config name


def test_a_broken_destination_file_is_named_by_its_file() -> None:
    with pytest.raises(KamalConfigError) as caught:
        read_kamal_config(
            BASE, "servers: [unclosed\n", destination="qa", base_name="config/deploy.yaml"
        )
    assert str(caught.value).startswith("config/deploy.qa.yml line 2: YAML error")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("service: [unclosed\n", "config/deploy.yml line 2: YAML error"),
        ("!!python/object/apply:os.system ['true']\n", "config/deploy.yml line 1: YAML error"),
        ("- a list\n", "config/deploy.yml: expected a YAML mapping, got list"),
    ],
)
def test_bad_files_are_one_line_naming_where(text: str, message: str) -> None:
    with pytest.raises(KamalConfigError) as caught:
        read_kamal_config(text, environ={})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_wrong_types_are_problems_by_key_path() -> None:
    text = "service: app\nimage: a/b\nservers: {web: 7}\nssh: {port: 99999}\nretain_containers: 0\n"
    assert read_kamal_config(text, environ={}).problems == (
        "servers.web: expected a list of hosts, got int",
        "ssh.port: expected a port number, got 99999",
        "retain_containers: expected a positive integer, got 0",
    )
