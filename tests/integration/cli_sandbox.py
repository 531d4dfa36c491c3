"""The sandbox as a user meets it, for the CLI and MCP tests: `SandboxRuntime` (simulated GitHub
and VMs on 127.0.0.1, in a thread, on a scaled clock), the config it writes, the world's past
recorded and brought up to date by one tracking round, and ways to run `vmkit-tui` on it: in
this process (`main`, fast) or as a real subprocess (`python -m vmkit_tui`).

The CLI and MCP server run on the wall clock, like a real user's; the sandbox clock runs `speed`
times faster, so a deploy of a simulated minute takes a few real seconds.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vmkit_tui.actions.preflight import live_deploy
from vmkit_tui.config import Config, load_config
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.domain.updates import Health, SourceHealth
from vmkit_tui.sandbox.commands import prepare_data_dir
from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/my-fastapi-app"
SETTLE_S = 30.0  # real seconds the first tracking round may take


@dataclass
class Run:
    """What a `vmkit-tui` command did."""

    code: int
    out: str
    err: str


@dataclass
class Sandbox:
    runtime: SandboxRuntime
    config_path: Path
    config: Config

    @property
    def history(self) -> History:
        assert self.config.history_path is not None
        return History(self.config.history_path)

    @property
    def data_dir(self) -> Path:
        assert self.config.data_dir is not None
        return self.config.data_dir

    def records(self, environment: str, repo: str = REPO) -> list[DeployRecord]:
        return newest_first(self.history.records(repo, environment))

    def live(self, environment: str, repo: str = REPO) -> DeployRecord:
        found = live_deploy(self.records(environment, repo))
        assert found is not None
        return found

    def world(self, action: object) -> object:
        """Run `action(world)` on the sandbox's own loop."""
        assert callable(action)
        return self.runtime.run_in_sandbox(action)

    def image_gone(self, environment: str, repo: str = REPO) -> DeployRecord:
        """A recorded deploy whose image is no longer in GHCR."""
        tags = self.world(lambda world: world.image_tags(repo))
        assert isinstance(tags, set)
        return next(r for r in self.records(environment, repo) if r.deploy.sha not in tags)

    def set_deploy_host_offline(self, environment: str, repo: str = REPO) -> None:
        def offline(world: World) -> None:
            world.set_vm_offline(world.environment(repo, environment).deploy_host, True)

        self.world(offline)

    def args(self, *argv: str) -> list[str]:
        return ["--config", str(self.config_path), *argv]

    def subprocess(self, *argv: str, timeout: float = 60.0) -> Run:
        """`python -m vmkit_tui --config … ARGV` as a real process, stdin not a terminal."""
        return run_vmkit(self.args(*argv), timeout=timeout)


def run_vmkit(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Run:
    """`python -m vmkit_tui ARGV` as a real process, stdin not a terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "vmkit_tui", *argv],
        cwd=ROOT,
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def child_env() -> dict[str, str]:
    """The environment for a vmkit-tui child: this checkout importable, no real token."""
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Terminal(io.StringIO):
    """A stdin that claims to be a terminal and answers the prompt with `answer`."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer + "\n")

    def isatty(self) -> bool:
        return True


@contextmanager
def sandbox(data_dir: Path, *, speed: float) -> Iterator[Sandbox]:
    """A running sandbox whose history has the world's past with its statuses."""
    prepare_data_dir(data_dir)
    runtime = SandboxRuntime(data_dir, seed=7, speed=speed, traffic_every=0)
    info = runtime.start()
    try:
        config = load_config(info.config_path)
        assert config.history_path is not None and config.data_dir is not None
        history = History(config.history_path)
        runtime.run_in_sandbox(lambda world: record_past(world, history, runtime.web_url))
        asyncio.run(_settle(config, history, config.data_dir))
        yield Sandbox(runtime, info.config_path, config)
    finally:
        runtime.stop()


async def _settle(config: Config, history: History, data_dir: Path) -> None:
    """One tracking round for every environment, as a first `vmkit-tui` start would do."""
    service = DeployService(config, AsyncHistory(history), data_dir, past_logs=False)
    waiting = {(repo.name, env.name) for repo in config.repos for env in repo.environments}
    async with service.updates.subscription() as queue, service:
        async with asyncio.timeout(SETTLE_S):
            while waiting:
                update = await queue.get()
                if isinstance(update, SourceHealth) and update.key == "github":
                    assert update.health is Health.OK, update.message
                    waiting.discard((update.repo, update.environment))
