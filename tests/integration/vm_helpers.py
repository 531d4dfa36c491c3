"""Helpers for tests against the sandbox VMs: waiting on conditions, running the simulated
world forward, reading a stream in the background (fixtures: `vm_fixtures.py`)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sources import ssh
from vmkit_tui.store.spool import LogRecord

REPO = "acme/my-fastapi-app"

# Hermetic (nothing from ~/.ssh or ssh-agent), quick to notice drops and to reconnect.
FAST = ssh.SshOptions(
    connect_timeout=5,
    keepalive_interval=2,
    keepalive_count_max=3,
    ssh_config=None,
    use_agent=False,
    reconnect_delay=0.05,
    reconnect_max_delay=0.3,
)


async def wait_until(
    condition: Callable[[], object], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Yield to the loop until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def run_world(
    clock: ManualClock, until: Callable[[], object], step: float = 1.0, timeout: float = 10.0
) -> None:
    """Advance simulated time `step` seconds at a time until `until()` holds (each step lets
    the sandbox and the client catch up); fail after `timeout` seconds of wall time."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s running the world")
        clock.advance(step)
        await asyncio.sleep(0.01)


def port_refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Reader:
    """Consumes an async iterator of records in the background (tests wait on what arrived)."""

    def __init__(self, records: AsyncIterator[LogRecord]) -> None:
        self.records: list[LogRecord] = []
        self.error: BaseException | None = None
        self._source = records
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for record in self._source:
                self.records.append(record)
        except Exception as exc:  # the test inspects it
            self.error = exc

    @property
    def texts(self) -> list[str]:
        return [record.text for record in self.records]

    async def wait_for(self, predicate: Callable[[LogRecord], bool], timeout: float = 5.0) -> None:
        await wait_until(
            lambda: self.error is not None or any(predicate(r) for r in self.records),
            timeout,
            "a matching record",
        )
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        aclose: Callable[[], Awaitable[None]] | None = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
