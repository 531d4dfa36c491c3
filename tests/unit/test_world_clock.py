"""The simulated clocks: manual time wakes sleepers in order; scaled time runs faster."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.sandbox.world.clock import ManualClock, ScaledClock, SimClock

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def test_manual_clock_wakes_sleepers_in_order_when_their_moment_is_reached() -> None:
    clock = ManualClock(START)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(name, s)) for name, s in (("late", 10), ("early", 5))]
    await asyncio.sleep(0)
    assert clock.pending_sleepers == 2
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.1)
    await asyncio.sleep(0)
    assert woke == ["early"]
    clock.set(START + timedelta(seconds=30))
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]
    assert clock.now() == START + timedelta(seconds=30)


async def test_manual_clock_returns_at_once_for_a_past_moment_and_refuses_to_go_back() -> None:
    clock = ManualClock(START)
    await asyncio.wait_for(clock.sleep_until(START - timedelta(seconds=1)), timeout=1)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 5, 1))  # naive


async def test_manual_clock_forgets_cancelled_sleepers() -> None:
    clock = ManualClock(START)
    tasks = [asyncio.create_task(clock.sleep(100 + i)) for i in range(100)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.pending_sleepers == 0
    survivor = asyncio.create_task(clock.sleep(1))
    await asyncio.sleep(0)
    assert clock.pending_sleepers == 1
    assert len(clock._sleepers) < 100  # compacted
    clock.advance(1)
    await asyncio.wait_for(survivor, timeout=1)


async def test_scaled_clock_runs_speed_times_faster_than_real_time() -> None:
    clock = ScaledClock(START, speed=1000.0)
    assert isinstance(clock, SimClock)
    await asyncio.wait_for(clock.sleep(50), timeout=2)  # 50 simulated s = 0.05 real s
    elapsed = (clock.now() - START).total_seconds()
    assert 50 <= elapsed < 2000
    with pytest.raises(ValueError):
        ScaledClock(START, speed=0)
