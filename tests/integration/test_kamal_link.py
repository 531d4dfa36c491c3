"""`kamal_config` in the repository: the service reads it through the sandbox's contents API
when it starts, fills what the config does not write, reads it again for free (304) while it is
unchanged, picks up a change, and reports a file it cannot use as that environment's health."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.test_github_client import SimTime
from vmkit_tui.config import HostSpec, parse_config
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import Health
from vmkit_tui.kamal_link import link_local, link_remote
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.repo_files import repo_files
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.polling import TrackingTiming

pytest_plugins = ["tests.integration.sandbox_fixtures"]

REPO = "acme/my-fastapi-app"
STAGING = "config/deploy.staging.yml"


def kamal_health(service: DeployService, environment: str) -> tuple[Health, str]:
    found = next(
        h for h in service.health() if h.key == "kamal-config" and h.environment == environment
    )
    return found.health, found.message


async def test_repo_kamal_config_is_read_refreshed_and_written_values_win(
    sandbox: GitHubSandbox, world: World, clock: ManualClock, tmp_path: Path
) -> None:
    sandbox.files = repo_files(world, lambda vm: "127.0.0.1:2201", "deploy", Path("/k/id"))
    config = parse_config(
        {
            "github": {"api_url": sandbox.base_url, "token": SANDBOX_TOKEN},
            "repos": [
                {
                    "name": REPO,
                    "environments": {
                        "staging": {
                            "branch": "main",
                            "kamal_config": "config/deploy.yml",
                            "destination": "staging",
                            "health_path": "/written",
                        },
                        "production": {"kamal_config": "config/deploy.yml", "destination": "qa"},
                    },
                }
            ],
        }
    )
    service = DeployService(
        config,
        AsyncHistory(History(tmp_path / "history.json")),
        tmp_path,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
    )
    async with service:
        staging = service.config.repo(REPO).environment("staging")
        assert staging.hosts == (HostSpec("deploy", "127.0.0.1", 2201),)
        assert staging.service == "my-fastapi-app" and staging.health_path == "/written"
        assert staging.identity_file == Path("/k/id")
        assert kamal_health(service, "staging") == (Health.OK, "")
        health, message = kamal_health(service, "production")  # no config/deploy.qa.yml
        assert health is Health.ERROR
        assert message == (
            "repos[0].environments.production.kamal_config: config/deploy.qa.yml not found on "
            "branch main"
        )
        assert service.config.repo(REPO).environment("production").hosts == ()

        files = dict(sandbox.files[REPO])
        files[STAGING] = files[STAGING].replace("127.0.0.1:2201", "127.0.0.1:2299")
        sandbox.files = {REPO: files}
        before = len(sandbox.requests)
        async with asyncio.timeout(10):  # the refresh task runs every REFRESH_S (simulated)
            while service.config.repo(REPO).environment("staging").hosts[0].port != 2299:
                await asyncio.sleep(0.01)
        contents = [r for r in sandbox.requests[before:] if "/contents/" in r.path]
        statuses = {(r.path.rsplit("/", 1)[1], r.status) for r in contents}
        assert ("deploy.staging.yml", 200) in statuses  # changed: read again
        assert ("deploy.yml", 304) in statuses and ("deploy.yml", 200) not in statuses  # free
        staging = service.config.repo(REPO).environment("staging")
        assert staging.hosts == (HostSpec("deploy", "127.0.0.1", 2299),)
        assert staging.health_path == "/written"  # still the written one after a refresh


async def test_local_and_repo_kamal_configs_read_the_same_destination_file(
    sandbox: GitHubSandbox, tmp_path: Path
) -> None:
    """A `.yaml` base still has a `.yml` destination file (Kamal's `sub_ext`): the local file
    and the one fetched through the contents API are the same path, so they derive alike."""
    base = "service: shop\nimage: acme/shop\nservers: [192.0.2.1]\n"
    files = {
        "config/deploy.yaml": base,
        "config/deploy.staging.yml": "servers: [deploy@192.0.2.7:2207]\n",
        "config/deploy.staging.yaml": "servers: [192.0.2.66]\n",  # never read by Kamal
    }
    sandbox.files = {REPO: files}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    envs = {
        name: {"kamal_config": path, "destination": "staging", "branch": "main"}
        for name, path in (("here", "./config/deploy.yaml"), ("there", "config/deploy.yaml"))
    }
    config = parse_config(
        {"repos": [{"name": REPO, "environments": envs}]}, source=tmp_path / "config.toml"
    )
    local = link_local(config).repo(REPO)
    assert local.environment("there") == config.repo(REPO).environment("there")  # not its job
    async with GitHubClient(sandbox.base_url, Secret(SANDBOX_TOKEN)) as client:
        linked, problems = await link_remote(link_local(config), client)
    assert problems == {}
    both = linked.repo(REPO)
    assert both.environment("here") == local.environment("here")  # left as linked on load
    assert (
        both.environment("here").hosts
        == both.environment("there").hosts
        == (HostSpec("deploy", "192.0.2.7", 2207),)
    )
    fetched = {
        r.path.rsplit("/contents/", 1)[1] for r in sandbox.requests if "/contents/" in r.path
    }
    assert fetched == {"config/deploy.yaml", "config/deploy.staging.yml"}
