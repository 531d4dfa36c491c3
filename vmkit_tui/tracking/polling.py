"""How a GitHub watcher paces its polls and words their failures (no I/O of its own).

`TrackingTiming` holds the intervals and patience; `RateBudget` stretches the poll interval when GitHub's hourly budget runs low, shared between
the watchers of one client; `wait_wall` sleeps until the next poll but wakes early when the
wall clock jumps (the machine slept) or someone asks for a poll now; `poll_failure` says what
a failed poll means for the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.domain.updates import Health
from vmkit_tui.sources.github import (
    AuthError,
    BadResponse,
    GitHubError,
    NotFound,
    RateLimit,
    Unavailable,
)
from vmkit_tui.store.history import HistoryError

__all__ = ["RateBudget", "Sleep", "TrackingTiming", "poll_failure", "wait_wall"]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TrackingTiming:
    """How often and how patiently watchers poll (seconds). `sleep` is injectable so tests and
    the benchmark run on the sandbox world's clock; the wall clock is the service's `now`."""

    active: float = 3.0  # something is live (gh run watch polls every 3 s)
    idle: float = 15.0  # nothing is live (GitHub suggests 10–15 s for run lists)
    jitter: float = 0.15  # ± this fraction, so many watchers do not poll in step
    tick: float = 5.0  # longest single sleep: a wall-clock jump is noticed within it
    max_backoff: float = 120.0  # after repeated failures
    auth_retry: float = 300.0  # after the token was refused
    log_attempts: int = 5  # polls to wait for a completed job's log before giving up on it
    backfill: int = 5  # finished deploys whose logs one poll may fetch (the rest: next polls)
    recent: float = 120.0  # a deploy that finished this recently still gets its VM lines
    dispatch_wait: float = 600.0  # a dispatched deploy waits this long for its run, polling quick
    # Idle watchers share one look at their workflow's runs this old: each look costs an HTTP
    # round trip (most of an idle dashboard's CPU). Kept below the shortest jittered idle
    # interval, so a watcher counting its interval from the look's time never polls back to back.
    probe_age: float = 10.0
    sleep: Sleep = asyncio.sleep


@dataclass(slots=True)
class RateBudget:
    """Shares GitHub's hourly budget between the watchers of one client.

    304s are free, so while plenty is left the base intervals stand. Below `low_water` (a
    fraction of the limit) every poll is assumed to cost its full price, and intervals stretch
    so that all watchers together fit in what is left before the reset, minus a reserve for the
    user's own actions (rollback, cancel). With nothing spare: wait for the reset."""

    watchers: int = 1
    low_water: float = 0.2
    reserve: int = 100

    def low(self, limit: RateLimit, now: datetime) -> bool:
        """Whether less than `low_water` of the hourly budget is left before its reset: polls
        stretch, and background work that can wait (the eligibility refresh's GHCR listing)
        waits. No limit (GHES with rate limiting off sends no headers) is never low."""
        return (
            limit.limit > 0 and limit.reset > now and limit.remaining < limit.limit * self.low_water
        )

    def interval(
        self, base: float, requests_per_poll: int, limit: RateLimit | None, now: datetime
    ) -> float:
        if limit is None or not self.low(limit, now):
            return base
        window = (limit.reset - now).total_seconds()
        spare = limit.remaining - min(self.reserve, limit.limit // 10)
        if spare <= 0:
            return max(base, window)
        return max(base, window * requests_per_poll * max(1, self.watchers) / spare)


def poll_failure(error: Exception, repo: str, workflow: str) -> tuple[Health, str]:
    """What a failed poll means for the user, in words (the retry delay is added by the caller)."""
    if isinstance(error, AuthError):
        return Health.AUTH, f"GitHub refused the token: {error}"
    if isinstance(error, NotFound):
        return (
            Health.ERROR,
            f"GitHub has no workflow {workflow} in {repo}, or the token cannot see the "
            f"repository: {error}",
        )
    if isinstance(error, Unavailable):
        return Health.UNREACHABLE, f"GitHub is unreachable: {error}"
    if isinstance(error, BadResponse):
        return Health.ERROR, f"GitHub sent an answer vmkit-tui cannot read: {error}"
    if isinstance(error, GitHubError | ValidationError):
        return Health.ERROR, f"GitHub refused the request: {error}"
    if isinstance(error, HistoryError | OSError):
        return Health.ERROR, f"Cannot record deploys: {error}"
    return Health.ERROR, f"Tracking failed: {type(error).__name__}: {error}"


async def wait_wall(
    seconds: float,
    *,
    sleep: Sleep,
    now: Callable[[], datetime],
    tick: float,
    wake: asyncio.Event,
) -> None:
    """Sleep `seconds` in slices of at most `tick`; return early when `wake` is set, or when
    the wall clock (`now`) says the time is up: after the machine slept, the event loop's
    monotonic clock lags behind the wall clock, and the next poll is due at once. `wake` is
    cleared on return."""
    due = now() + timedelta(seconds=seconds)
    left = seconds
    while left > 0 and not wake.is_set():
        step = min(tick, left)
        sleeper = asyncio.ensure_future(sleep(step))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        left -= step
        if now() >= due:
            break
    wake.clear()
