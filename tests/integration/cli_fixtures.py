"""Sandbox fixtures for the CLI and MCP tests (see `cli_sandbox.py` for what a sandbox is).

A test module asks for them with `pytest_plugins = ["tests.integration.cli_fixtures"]`:
`shared` is one sandbox per test module, for the tests that change no deploy in it; `fresh`
is a sandbox of the test's own. Both run the simulated clock 20 times faster than the wall.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_sandbox import Sandbox, sandbox

SPEED = 20  # simulated seconds per real second


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the tests that change no deploy in it."""
    with sandbox(tmp_path_factory.mktemp("shared"), speed=SPEED) as found:
        yield found


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path / "sandbox", speed=SPEED) as found:
        yield found
