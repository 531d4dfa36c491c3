"""The past's job logs, fetched in the background.

The first start records each environment's past without its job logs (one write, no job
requests), so those deploys have no log and no diagnosis. The dashboard fetches a deploy's when
it is first selected (`DeployService.fetch_logs`); `PastLogs` fetches the rest unasked, so a
failed deploy from before the first start already says why when someone looks at it.

After an environment's first poll, its finished deploys without job logs are fetched newest
first (oldest last), one deploy at a time, each through its watcher's `catch_up`: the path a
selection takes, under the same lock, so a job's log is claimed and written once whoever asks
first. It spends only the top of GitHub's hourly budget (`floor`): below that it waits for the
reset, leaving the rest to polling and the user's actions; it pauses `gap` seconds between
deploys, and ends when all are done (nothing runs afterwards). Cancelling it stops it cleanly:
a log being written is finished first (the watcher's claim-and-spool cannot be split).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.sources.github import GitHubClient, GitHubError, RateLimited
from vmkit_tui.store.history import AsyncHistory, HistoryError
from vmkit_tui.tracking.job_logs import wants_job_logs
from vmkit_tui.tracking.polling import TrackingTiming, wait_wall
from vmkit_tui.tracking.tracker import EnvironmentTracker

__all__ = ["PastLogs"]

EnvKey = tuple[str, str]  # (repo, environment)
EXPECTED = (GitHubError, HistoryError, OSError, ValidationError)


class PastLogs:
    """Fetches the job logs of every tracked environment's past; `run()` until done."""

    def __init__(
        self,
        trackers: Mapping[EnvKey, EnvironmentTracker],
        history: AsyncHistory,
        github: GitHubClient,
        *,
        now: Callable[[], datetime],
        timing: TrackingTiming,
        floor: float = 0.5,  # fraction of the hourly limit never spent on the past
        gap: float = 2.0,  # seconds between two deploys' fetches
    ) -> None:
        self.trackers = dict(trackers)
        self.history = history
        self.github = github
        self.now = now
        self.timing = timing
        self.floor = floor
        self.gap = gap
        self._failures = 0

    async def run(self) -> None:
        """Each environment's past once its watcher has polled; returns when all are done."""
        waiting = dict(self.trackers)
        while waiting:
            await _any_polled([tracker.polled for tracker in waiting.values()])
            ready = {key: t for key, t in waiting.items() if t.polled.is_set()}
            for key in ready:
                del waiting[key]
            try:
                await self._fetch_past(ready)
            except EXPECTED:  # the history cannot be read: the watchers say so; selection remains
                return

    async def _fetch_past(self, trackers: Mapping[EnvKey, EnvironmentTracker]) -> None:
        records = newest_first(
            [
                record
                for record in await self.history.records()
                if (record.deploy.repo, record.deploy.environment) in trackers
                and wants_job_logs(record)
            ]
        )
        for record in records:
            tracker = trackers[(record.deploy.repo, record.deploy.environment)]
            await self._fetch_one(tracker, record.id)
            await self._wait(self.gap)

    async def _fetch_one(self, tracker: EnvironmentTracker, deploy_id: str) -> None:
        """One deploy's logs (a no-op if a selection fetched them first); a failure moves on to
        the next deploy after a backoff, a rate limit is waited out and the deploy tried again."""
        while True:
            await self._within_budget()
            try:
                await tracker.catch_up(deploy_id)
            except RateLimited as error:
                await self._wait((error.until - self.now()).total_seconds() + 1.0)
                continue
            except EXPECTED:  # GitHub unreachable, the history unwritable…: the watcher says so
                self._failures += 1
                exponent = min(self._failures - 1, 10)
                await self._wait(min(self.timing.max_backoff, self.timing.active * 2**exponent))
                return
            self._failures = 0
            return

    async def _within_budget(self) -> None:
        """Wait while what is left of the hourly budget is below the floor, until its reset
        (a budget whose reset has passed is fresh again; no headers: no limit)."""
        while True:
            limit = self.github.last_rate_limit
            now = self.now()
            if (
                limit is None
                or limit.limit <= 0
                or limit.reset <= now
                or limit.remaining >= limit.limit * self.floor
            ):
                return
            await self._wait((limit.reset - now).total_seconds() + 1.0)

    async def _wait(self, seconds: float) -> None:
        await wait_wall(
            seconds,
            sleep=self.timing.sleep,
            now=self.now,
            tick=self.timing.tick,
            wake=asyncio.Event(),
        )


async def _any_polled(events: Collection[asyncio.Event]) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
