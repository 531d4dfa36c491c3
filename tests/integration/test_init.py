"""`vmkit-tui init` against the running sandbox, as a new user runs it: the config it writes
names every environment's hosts, branch, destination, service and health path as the sandbox's
repos (their deploy workflows and Kamal configs) say, and the CLI and MCP server work on it
unchanged (the dashboard's test is tests/tui/test_init_dashboard.py)."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.integration.cli_sandbox import REPO, ROOT, Run, Sandbox, child_env, run_vmkit, sandbox
from vmkit_tui.config import HostSpec, load_config
from vmkit_tui.domain.models import Status
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN
from vmkit_tui.sandbox.world.world import World

SPEED = 20


def init_env() -> dict[str, str]:
    """A new user's environment: the token for the (non-github.com) sandbox host, nothing else."""
    return {**child_env(), "GH_ENTERPRISE_TOKEN": SANDBOX_TOKEN}


def vmkit(config: Path, sb: Sandbox, *argv: str, timeout: float = 90.0) -> Run:
    """`python -m vmkit_tui` on the init-written config (and the sandbox's recorded history)."""
    return run_vmkit(["--config", str(config), *argv], env=init_env(), timeout=timeout)


def run_init(sb: Sandbox, config: Path, *extra: str, timeout: float = 90.0) -> Run:
    assert sb.runtime.info is not None
    return vmkit(
        config,
        sb,
        "init",
        "--api-url",
        sb.runtime.info.api_url,
        "--known-hosts",
        str(sb.runtime.info.key_dir / "known_hosts"),
        *extra,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path, Run]]:
    with sandbox(tmp_path_factory.mktemp("init"), speed=SPEED) as sb:
        config = sb.data_dir.parent / "mine" / "config.toml"
        yield sb, config, run_init(sb, config, "--yes")


def test_init_writes_what_the_repos_say(written: tuple[Sandbox, Path, Run]) -> None:
    sb, path, done = written
    assert done.code == 0, done.err
    assert f"wrote {path}" in done.out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # billing-api's Kamal config reads its registry user from ERB ENV: named, not guessed.
    assert (
        "acme/billing-api: could not resolve registry.username: environment variable "
        "KAMAL_REGISTRY_USERNAME is not set" in done.err
    )
    config = load_config(path)

    def expected(world: World) -> dict[tuple[str, str], tuple[object, ...]]:
        return {
            (repo.full_name, env.name): (
                tuple(HostSpec.parse(sb.runtime.vm_host_spec(vm)) for vm in env.vm_names),
                env.branch,
                env.service,
                env.workflow.file_name,
            )
            for repo in world.repos.values()
            for env in world.environments(repo)
        }

    truth = sb.world(expected)
    assert isinstance(truth, dict)
    found = {
        (repo.name, env.name): (env.hosts, env.branch, env.service, env.workflow)
        for repo in config.repos
        for env in repo.environments
    }
    assert found == truth
    health = {repo.name: {e.health_path for e in repo.environments} for repo in config.repos}
    assert health == {
        "acme/storefront": {"/up"},
        "acme/billing-api": {"/healthz"},
        "acme/my-fastapi-app": {"/health"},
    }
    assert all(e.destination == e.name for r in config.repos for e in r.environments)


def test_a_second_init_shows_a_diff_and_writes_only_on_confirmation(
    written: tuple[Sandbox, Path, Run],
) -> None:
    sb, path, _ = written
    before = path.read_text()
    path.write_text(before.replace('health_path = "/health"', 'health_path = "/old"', 1))
    done = run_init(sb, path)  # stdin is not a terminal and no --yes: nothing is written
    assert done.code == 1 and "pass --yes" in done.err
    assert '-health_path = "/old"' in done.out and '+health_path = "/health"' in done.out
    assert "/old" in path.read_text()
    assert run_init(sb, path, "--yes").code == 0
    assert path.read_text() == before


def test_cli_and_mcp_work_on_the_written_config(written: tuple[Sandbox, Path, Run]) -> None:
    sb, path, _ = written
    history = str(sb.config.history_path)
    listed = vmkit(path, sb, "--history", history, "deploys", REPO, "staging", "--json")
    assert listed.code == 0, listed.err
    ids = [d["id"] for d in json.loads(listed.out)]
    assert ids and ids == [r.id for r in sb.records("staging")[: len(ids)]]
    rolled = vmkit(path, sb, "--history", history, "rollback", REPO, "staging", "--yes", "--wait")
    assert rolled.code == 0, rolled.err
    newest = sb.records("staging")[0]
    assert newest.status is Status.SUCCEEDED and newest.first_healthy_at is not None  # over SSH
    assert _mcp_environments(path, history) >= {(REPO, "staging"), (REPO, "production")}


def _mcp_environments(config: Path, history: str) -> set[tuple[str, str]]:
    import anyio

    async def ask() -> set[tuple[str, str]]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "vmkit_tui", "--config", str(config), "--history", history, "mcp"],
            cwd=str(ROOT),
            env=init_env(),
        )
        async with Client(stdio_client(params)) as client:
            result = await client.call_tool("list_environments", {})
        assert not result.is_error and isinstance(result.structured_content, dict)
        return {(e["repo"], e["environment"]) for e in result.structured_content["environments"]}

    return anyio.run(ask)


def test_settings_outside_the_repos_are_kept_and_the_token_never_shown(
    written: tuple[Sandbox, Path, Run],
) -> None:
    sb, path, _ = written
    assert sb.runtime.info is not None
    mine = path.with_name("with-token.toml")
    mine.write_text(
        f'[github]\napi_url = "{sb.runtime.info.api_url}"\ntoken = "{SANDBOX_TOKEN}"\n\n'
        '[ui]\ntheme = "nord"\n\n[[repos]]\nname = "acme/old"\n\n[repos.environments.x]\n'
    )
    mine.chmod(0o600)
    done = vmkit(mine, sb, "init", "--yes")  # the config's own API URL and token
    assert done.code == 0, done.err
    assert SANDBOX_TOKEN not in done.out + done.err and 'token = "***"' in done.out
    assert '-name = "acme/old"' in done.out
    config = load_config(mine)
    assert config.ui.theme == "nord" and config.github.token is not None
    assert config.github.token.reveal() == SANDBOX_TOKEN
    assert {r.name for r in config.repos} == {"acme/storefront", "acme/billing-api", REPO}


def test_path_reads_the_kamal_config_from_a_checkout(
    written: tuple[Sandbox, Path, Run], tmp_path: Path
) -> None:
    sb, path, _ = written

    def files(world: World) -> dict[str, str]:
        assert sb.runtime._github is not None
        return dict(sb.runtime._github.files[REPO])

    served = sb.world(files)
    assert isinstance(served, dict)
    for name, text in served.items():
        (tmp_path / "checkout" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "checkout" / name).write_text(text)
    (tmp_path / "checkout" / "config" / "deploy.staging.yml").write_text(
        "servers:\n  web:\n    hosts: [203.0.113.7]\n"
    )
    mine = tmp_path / "from-checkout.toml"
    done = run_init(sb, mine, REPO, "--path", str(tmp_path / "checkout"), "--yes")
    assert done.code == 0, done.err
    staging = load_config(mine).repo(REPO).environment("staging")
    assert staging.hosts == (HostSpec("deploy", "203.0.113.7"),)  # the checkout's, not the API's
    assert load_config(path).repo(REPO).environment("production") == load_config(mine).repo(
        REPO
    ).environment("production")
    refused = run_init(sb, mine, "--path", str(tmp_path / "checkout"))
    assert refused.code == 1 and "name the one repository" in refused.err


def test_a_derived_value_that_breaks_the_rules_is_exit_2_naming_the_key(
    written: tuple[Sandbox, Path, Run], tmp_path: Path
) -> None:
    sb, _, _ = written
    (tmp_path / "checkout" / "config").mkdir(parents=True)
    (tmp_path / "checkout" / "config" / "deploy.yml").write_text(
        "service: Not A Name\nimage: acme/x\nservers: [203.0.113.9]\n"
    )
    mine = tmp_path / "bad.toml"
    done = run_init(sb, mine, REPO, "--path", str(tmp_path / "checkout"), "--yes")
    assert done.code == 2
    assert done.err.strip().splitlines() == [
        "vmkit-tui: the derived config is not valid: "
        'repos[0].environments.production.service: expected a Kamal service name, got "Not A Name"'
    ]
    assert not mine.exists()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.write_bytes(b'[ui]\ntheme = "nord\xff"\n'), "not UTF-8 (byte 18)"),
        (lambda p: p.mkdir(), "cannot read: Is a directory"),
    ],
)
def test_an_existing_config_that_cannot_be_read_is_exit_2_and_left_alone(
    written: tuple[Sandbox, Path, Run], tmp_path: Path, make: Callable[[Path], object], why: str
) -> None:
    sb, _, _ = written
    mine = tmp_path / "config.toml"
    make(mine)
    before = mine.read_bytes() if mine.is_file() else None
    done = run_init(sb, mine, "--yes")
    assert (done.code, done.err) == (2, f"vmkit-tui: {mine}: {why}\n")
    assert (mine.read_bytes() if mine.is_file() else None) == before


def test_a_hand_broken_config_is_named_by_file_and_line_and_replaced(
    written: tuple[Sandbox, Path, Run], tmp_path: Path
) -> None:
    """Its settings cannot be carried over, so init says which line is broken and goes on to
    write the derived config (after the usual confirmation)."""
    sb, _, _ = written
    mine = tmp_path / "config.toml"
    mine.write_text('[ui]\ntheme = "nord"\n[paths\n')
    done = run_init(sb, mine, "--yes")
    assert done.code == 0, done.err
    assert done.err.splitlines()[0] == (
        f"vmkit-tui: {mine}: TOML syntax error at line 3, column 7: Expected ']' at the end of "
        "a table declaration (so none of its settings are carried over)"
    )
    assert "Traceback" not in done.err
    assert load_config(mine).ui.theme is None


def test_the_existing_config_is_read_once(
    written: tuple[Sandbox, Path, Run], tmp_path: Path
) -> None:
    """A FIFO gives its text to one reader only: init shows the diff against the text it read
    and carries that same text's settings over (a second read would wait forever)."""
    sb, _, _ = written
    mine = tmp_path / "config.toml"
    os.mkfifo(mine)
    feeder = threading.Thread(target=mine.write_text, args=('[ui]\ntheme = "nord"\n',), daemon=True)
    feeder.start()
    done = run_init(sb, mine, "--yes", timeout=60)
    feeder.join(timeout=5)
    assert done.code == 0, done.err
    assert '-theme = "nord"' not in done.out  # diffed against what it read, and kept
    assert load_config(mine).ui.theme == "nord"
