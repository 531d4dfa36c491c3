"""Simulated time for the sandbox world.

The sandbox GitHub server and the sandbox VM are two views of one simulated world; both read time
from the same clock so that what the VM prints matches the phase of the GitHub run. Two clocks:

- `ScaledClock`: simulated time runs with real time, optionally faster (the `demo` command).
- `ManualClock`: time moves only when a test says so, which makes tests and snapshots exact.

Pure asyncio + stdlib: no Textual, no aiohttp, no asyncssh.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class SimClock(Protocol):
    """What the world and the sandbox servers need from a clock."""

    def now(self) -> datetime:
        """The current simulated moment (UTC-aware)."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once `now() >= moment`."""
        ...

    async def sleep(self, sim_seconds: float) -> None:
        """Return after `sim_seconds` of simulated time."""
        ...


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the simulated clock is UTC-aware")
    return moment.astimezone(UTC)


class ScaledClock:
    """Simulated time = `start` + real monotonic time elapsed since creation × `speed`."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = _require_aware(start)
        self._speed = speed
        self._origin = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)

    async def sleep_until(self, moment: datetime) -> None:
        moment = _require_aware(moment)
        # Loop because float rounding can wake us a hair early.
        while (remaining := (moment - self.now()).total_seconds()) > 0:
            await asyncio.sleep(remaining / self._speed)

    async def sleep(self, sim_seconds: float) -> None:
        await self.sleep_until(self.now() + timedelta(seconds=sim_seconds))


class ManualClock:
    """Time moves only by `advance()` / `set()`; sleepers wake when their moment is reached.

    `advance` and `set` are plain methods: they resolve the sleepers' futures, and the woken
    coroutines run as soon as the caller yields to the event loop.
    """

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a ManualClock does not go backwards")
        return self.set(self._now + timedelta(seconds=seconds))

    def set(self, moment: datetime) -> datetime:
        moment = _require_aware(moment)
        if moment < self._now:
            raise ValueError("a ManualClock does not go backwards")
        self._now = moment
        while self._sleepers and self._sleepers[0][0] <= moment:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        return moment

    @property
    def pending_sleepers(self) -> int:
        """Sleepers still waiting (tests use it to know a task has reached its sleep)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep_until(self, moment: datetime) -> None:
        moment = _require_aware(moment)
        if moment <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self._sleepers) >= 64:
            # Cancelled sleepers stay in the heap until their moment; drop them now and then.
            live = [entry for entry in self._sleepers if not entry[2].done()]
            if len(live) * 2 < len(self._sleepers):
                heapq.heapify(live)
                self._sleepers = live
        heapq.heappush(self._sleepers, (moment, next(self._counter), future))
        await future

    async def sleep(self, sim_seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=sim_seconds))
