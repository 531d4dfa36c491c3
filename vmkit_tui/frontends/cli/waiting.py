"""Following deploys for the CLI: tracking while a command waits, waiting for a deploy's final
status and for what tracking adds after it (diagnosis, job logs), and picking updates off the
service's queue. Used by `deploys` (one sync round), `--wait` and `logs --follow`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeGuard

from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth, Update
from vmkit_tui.frontends.cli.output import Failed, say
from vmkit_tui.frontends.present import clean
from vmkit_tui.service import DeployService
from vmkit_tui.tracking.job_logs import logged_jobs

SETTLE_TIMEOUT = 20.0  # seconds to wait for a finished deploy's logs and diagnosis
REREAD_EVERY = 3.0  # seconds without news before a waiter re-reads the history and polls GitHub

Queue = asyncio.Queue[Update]


@contextlib.asynccontextmanager
async def tracking(service: DeployService, repo: str, environment: str) -> AsyncIterator[Queue]:
    """The service's updates, subscribed before tracking of this one environment starts
    (nothing is missed); tracking is stopped on the way out."""
    async with service.updates.subscription() as queue:
        await service.start(only={(repo, environment)})
        try:
            yield queue
        finally:
            await service.stop()


async def wait_final(
    service: DeployService, queue: Queue, deploy_id: str, on_change: Callable[[DeployRecord], None]
) -> DeployRecord:
    """Follow a deploy (tracking running) until it has reached a final status and settled (see
    `settled`; at most SETTLE_TIMEOUT s after it ended), calling `on_change` at every status
    change; GitHub trouble on its environment is said once per message. Raises Failed when
    nothing can track it (no usable token)."""
    loop = asyncio.get_running_loop()
    record = await service.record(deploy_id)
    where = (record.deploy.repo, record.deploy.environment)
    seen, said = record.status, ""
    give_up: float | None = None  # when to stop waiting for a finished deploy to settle
    while not (record.status.is_final and settled(record)):
        if record.status.is_final:
            give_up = give_up or loop.time() + SETTLE_TIMEOUT
            if loop.time() >= give_up:
                break
        wait = REREAD_EVERY if give_up is None else min(REREAD_EVERY, give_up - loop.time())
        update = await next_update(
            queue,
            lambda u: (
                (isinstance(u, DeployChanged) and u.record.id == deploy_id)
                or _github_trouble(u, where)
            ),
            max(wait, 0.0),
        )
        if update is None:  # quiet: look again ourselves, and have GitHub polled now
            record = await service.record(deploy_id)
            service.track_now(*where)
        elif isinstance(update, DeployChanged):
            record = update.record
        elif isinstance(update, SourceHealth) and update.message != said:
            said = update.message
            if update.health is Health.AUTH:
                raise Failed(f"cannot follow deploy {deploy_id}: {clean(said)}")
            say(clean(said))
        if record.status is not seen:
            seen = record.status
            on_change(record)
    return record


def settled(record: DeployRecord) -> bool:
    """Whether what tracking adds after a final status is in: a failure's diagnosis, a success's
    job logs. A cancelled run may have no log at all, and a deploy without a GitHub run (Kamal
    over SSH, a dispatch that failed) has nothing more coming."""
    if record.run_id is None or record.status is Status.CANCELLED:
        return True
    if record.status is Status.FAILED:
        return record.diagnosis is not None
    return bool(logged_jobs(record))


def _github_trouble(update: Update, where: tuple[str, str]) -> TypeGuard[SourceHealth]:
    """A GitHub health report on this environment that is not OK."""
    return (
        isinstance(update, SourceHealth)
        and update.key == "github"
        and (update.repo, update.environment) == where
        and update.health is not Health.OK
    )


async def next_update(
    queue: Queue, wanted: Callable[[Update], bool], timeout: float
) -> Update | None:
    """The next update that is `wanted` (others are dropped), or None after `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                update = await queue.get()
                if wanted(update):
                    return update
    except TimeoutError:
        return None
