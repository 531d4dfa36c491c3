"""Helpers for deploy-tracking tests: a `DeployService` tracking the sandbox GitHub over real
HTTP on 127.0.0.1, in virtual time.

Virtual time: the trackers' `sleep` moves the world's `ManualClock` on at once, so a deploy that
takes minutes of simulated time is tracked in well under a second, and the world only changes
when the trackers wait (as it would while they sleep). Tests wait for what the service
publishes (`Recorder.wait`), each wait bounded by a real-time timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from vmkit_tui.config import Config, EnvironmentConfig, GitHubConfig, RepoConfig
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth, Update
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.polling import TrackingTiming

REPO = "acme/my-fastapi-app"
IMAGE = "ghcr.io/acme/my-fastapi-app"
BRANCHES = {"production": "main", "staging": "staging"}
WAIT_S = 20.0  # real seconds any single wait may take

U = TypeVar("U", bound=Update)


class SimTime:
    """A tracker's sleep: the world's clock moves on by that much, now."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def make_config(
    api_url: str, environments: Sequence[str] = ("production",), token: str | None = SANDBOX_TOKEN
) -> Config:
    envs = tuple(EnvironmentConfig(name, branch=BRANCHES[name]) for name in environments)
    return Config(
        source=None,
        github=GitHubConfig(api_url=api_url, token=Secret(token) if token else None),
        repos=(RepoConfig(REPO, IMAGE, envs),),
    )


class Recorder:
    """Every update a service published, in order; a wait also looks at what came before."""

    def __init__(self, queue: asyncio.Queue[Update]) -> None:
        self.seen: list[Update] = []
        self._queue = queue

    async def wait(
        self,
        predicate: Callable[[Update], bool],
        *,
        after: Update | None = None,
        timeout: float = WAIT_S,
    ) -> Update:
        """The first update (after `after`, if given) that matches, waiting for it if needed."""
        start = 0 if after is None else self.index(after) + 1
        for update in self.seen[start:]:
            if predicate(update):
                return update
        async with asyncio.timeout(timeout):
            while True:
                update = await self._queue.get()
                self.seen.append(update)
                if predicate(update):
                    return update

    def of(self, kind: type[U]) -> list[U]:
        return [update for update in self.seen if isinstance(update, kind)]

    def index(self, update: Update) -> int:
        return next(i for i, seen in enumerate(self.seen) if seen is update)


def health_is(health: Health, environment: str = "production") -> Callable[[Update], bool]:
    return lambda u: (
        isinstance(u, SourceHealth)
        and u.key == "github"
        and u.environment == environment
        and u.health is health
    )


def record_of(
    run_id: int, when: Callable[[DeployRecord], bool] = lambda _r: True
) -> Callable[[Update], bool]:
    return lambda u: isinstance(u, DeployChanged) and u.record.run_id == run_id and when(u.record)


@asynccontextmanager
async def tracking(
    sandbox: GitHubSandbox,
    clock: ManualClock,
    data_dir: Path,
    *,
    environments: Sequence[str] = ("production",),
    history: History | None = None,
    token: str | None = SANDBOX_TOKEN,
    past_logs: bool = False,
) -> AsyncIterator[tuple[DeployService, Recorder]]:
    """A started service (its own client from the config's token) and its recorded updates.
    The past's logs are fetched only when asked for, unless `past_logs` (in the background)."""
    service = DeployService(
        make_config(sandbox.base_url, environments, token),
        AsyncHistory(history or History(data_dir / "history.json")),
        data_dir,
        now=clock.now,
        tracking_timing=TrackingTiming(jitter=0.0, sleep=SimTime(clock).sleep),
        past_logs=past_logs,
    )
    async with service.updates.subscription() as queue:
        recorder = Recorder(queue)
        async with service:
            yield service, recorder
