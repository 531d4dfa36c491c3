"""What the deploy service tells its front ends (TUI, CLI --wait, MCP) as things happen.

Plain frozen dataclasses, so the TUI can wrap them in Textual messages and the CLI can print
them; a `Broadcaster` hands each subscriber its own queue so a slow one never blocks tracking.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from vmkit_tui.domain.models import DeployRecord


@dataclass(frozen=True, slots=True)
class DeployChanged:
    """A deploy was created or got new events: here is its whole current record."""

    record: DeployRecord


@dataclass(frozen=True, slots=True)
class DeploysPruned:
    deploy_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StepProgress:
    job: str
    step: str
    number: int
    status: str  # queued / in_progress / completed (GitHub's words)
    conclusion: str | None


@dataclass(frozen=True, slots=True)
class StepsChanged:
    """Live GitHub Actions step progress of a running deploy."""

    deploy_id: str
    steps: tuple[StepProgress, ...]


@dataclass(frozen=True, slots=True)
class LogGrew:
    """New lines reached a deploy's log spool (the viewer re-reads its index)."""

    deploy_id: str


@dataclass(frozen=True, slots=True)
class EligibilityChanged:
    """New rollback-eligibility facts for these environments of `repo` (ask the service)."""

    repo: str
    environments: tuple[str, ...]


class Health(StrEnum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    UNREACHABLE = "unreachable"
    AUTH = "auth"  # token missing, refused, or lacks a scope
    HOST_KEY = "host_key"  # SSH host key unknown or changed
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How talking to one outside party is going (GitHub for an environment, or one SSH host)."""

    key: str  # "github" or "ssh:user@host:port"
    repo: str
    environment: str
    health: Health
    message: str = ""  # human words; remote parts already sanitised
    until: datetime | None = None  # for RATE_LIMITED: when polling resumes


Update = DeployChanged | DeploysPruned | StepsChanged | LogGrew | SourceHealth | EligibilityChanged


class Broadcaster:
    """Fan-out of updates; each subscriber has a bounded queue and drops its oldest on overflow
    (state updates are idempotent: the next DeployChanged carries the whole record)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queues: set[asyncio.Queue[Update]] = set()
        self._maxsize = maxsize

    def publish(self, update: Update) -> None:
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(update)

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[asyncio.Queue[Update]]:
        queue: asyncio.Queue[Update] = asyncio.Queue(self._maxsize)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
