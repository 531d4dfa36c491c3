"""vmkit-tui's reading of Kamal configs agrees with the real Kamal's (`kamal config`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.kamal_oracle import kamal_config, write_project
from vmkit_tui.sources.kamal_config import KamalSettings, destination_file, read_kamal_config

KAMAL = "config/deploy.yml"
LIST_SERVERS = """\
service: shop
image: acme/shop
servers:
  - 192.0.2.10
  - 192.0.2.11:2222
  - "2001:db8::12"
  - "[2001:db8::13]:2200"
registry:
  username: acme
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
"""

HASH_SERVERS = """\
service: api
image: acme/api
primary_role: api
servers:
  api:
    hosts:
      - 192.0.2.20: [edge, eu]
      - 192.0.2.21: edge
    proxy:
      healthcheck:
        path: /healthz
  worker:
    hosts:
      - 192.0.2.30
    cmd: bin/jobs
retain_containers: 3
registry:
  server: ghcr.io
  username: acme
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
ssh:
  user: deploy
  port: 2200
  proxy: "jump@bastion.example.com:22"
proxy:
  healthcheck:
    path: /up-root
"""

DESTINATIONS = {
    "config/deploy.yml": """\
service: web
image: acme/web
servers:
  web:
    - 192.0.2.40
  job:
    hosts: [192.0.2.41]
registry:
  server: ghcr.io
  username: acme
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
ssh:
  user: app
proxy:
  healthcheck:
    path: /status
""",
    "config/deploy.staging.yml": """\
servers:
  web:
    - 198.51.100.7
ssh:
  port: 2022
proxy:
  host: staging.example.com
""",
}

ERB_ENV = """\
<%# a comment Kamal drops %>
service: <%= ENV["APP_NAME"] %>
image: acme/<%= ENV['APP_NAME'] %>
servers:
  web:
    hosts:
      - <%= ENV.fetch("WEB_HOST") %>
      - <%= ENV.fetch("SPARE_HOST", "192.0.2.99") %>
registry:
  server: ghcr.io
  username: acme
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
ssh:
  user: <%= ENV["DEPLOY_USER"] %>
  port: <%= ENV.fetch("DEPLOY_PORT", "2201") %>
"""

CASES = [
    ("list servers", {"config/deploy.yml": LIST_SERVERS}, None, {}),
    ("hash servers with tags and ssh.proxy", {"config/deploy.yml": HASH_SERVERS}, None, {}),
    ("base of a destination project", DESTINATIONS, None, {}),
    ("staging destination", DESTINATIONS, "staging", {}),
    (
        "ERB ENV lookups",
        {"config/deploy.yml": ERB_ENV},
        None,
        {"APP_NAME": "erbapp", "WEB_HOST": "192.0.2.50", "DEPLOY_USER": "ops"},
    ),
]


def derived(files: dict[str, str], destination: str | None, env: dict[str, str]) -> KamalSettings:
    dest_text = files.get(destination_file(KAMAL, destination)) if destination else None
    return read_kamal_config(files[KAMAL], dest_text, destination=destination, environ=env)


def assert_agree(ours: KamalSettings, root: Path, destination: str | None, env: dict[str, str]):
    kamal = kamal_config(root, destination, env)
    assert [h.entry for h in ours.hosts] == kamal.hosts
    assert ours.primary_host is not None and ours.primary_host.entry == kamal.primary_host
    assert list(ours.roles) == kamal.roles
    assert ours.service == kamal.service
    assert ours.image == kamal.repository
    assert (ours.ssh.user, ours.ssh.port, ours.ssh.proxy) == (
        kamal.ssh_user,
        kamal.ssh_port,
        kamal.ssh_proxy,
    )
    assert ours.health_path == kamal.health_path
    assert ours.retain_containers == kamal.retain_containers
    assert not ours.unresolved and not ours.problems


@pytest.mark.parametrize(("name", "files", "destination", "env"), CASES, ids=[c[0] for c in CASES])
def test_derived_settings_match_real_kamal(
    tmp_path: Path,
    name: str,
    files: dict[str, str],
    destination: str | None,
    env: dict[str, str],
) -> None:
    root = write_project(tmp_path, files)
    assert_agree(derived(files, destination, env), root, destination, env)


def test_the_cases_differ_where_kamal_does() -> None:
    """The oracle cases are not all alike: a wrong rule would show in at least one."""
    staging = derived(DESTINATIONS, "staging", {})
    base = derived(DESTINATIONS, None, {})
    assert [h.entry for h in staging.hosts] != [h.entry for h in base.hosts]
    assert derived({"config/deploy.yml": HASH_SERVERS}, None, {}).health_path == "/healthz"


def sandbox_projects() -> list[tuple[str, dict[str, str], str]]:
    """Every (repo, files, destination) the demo sandbox serves."""
    from vmkit_tui.sandbox.servers.repo_files import repo_files
    from vmkit_tui.sandbox.world.clock import ManualClock
    from vmkit_tui.sandbox.world.world import World

    world = World.seeded(7, ManualClock(datetime(2026, 5, 1, tzinfo=UTC)), profile="demo")
    ports = {vm.name: 2200 + i for i, vm in enumerate(world.vms())}
    served = repo_files(world, lambda vm: f"127.0.0.1:{ports[vm]}", "deploy", Path("/k/id"))
    return [
        (repo, files, path.split(".")[1])
        for repo, files in served.items()
        for path in files
        if path.startswith("config/deploy.") and path != "config/deploy.yml"
    ]


SANDBOX = sandbox_projects()


@pytest.mark.parametrize(
    ("repo", "files", "destination"), SANDBOX, ids=[f"{r}:{d}" for r, _, d in SANDBOX]
)
def test_sandbox_kamal_configs_read_as_real_kamal_reads_them(
    tmp_path: Path, repo: str, files: dict[str, str], destination: str
) -> None:
    env = {"KAMAL_REGISTRY_USERNAME": "acme"}
    kamal_files = {path: text for path, text in files.items() if path.startswith("config/")}
    root = write_project(tmp_path, kamal_files)
    assert_agree(derived(kamal_files, destination, env), root, destination, env)
