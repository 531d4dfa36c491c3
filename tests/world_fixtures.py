"""The seeded world every sandbox test starts from, as pytest fixtures.

A test module (or fixture module) asks for them with `pytest_plugins = ["tests.world_fixtures"]`:
`clock` is a `ManualClock` at `START` (time moves only when the test says so) and `world` the
small world seeded with 7 on it, so unit and integration tests see the same content. Test modules also import `START`
from here, before pytest loads it as a plugin; it holds no asserts, so PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def world(clock: ManualClock) -> World:
    return World.seeded(7, clock, profile="small")
