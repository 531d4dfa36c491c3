"""The command log: every outgoing call (a GitHub request, an SSH command), as `@` and
`vmkit-tui log-calls` show it.

People trust a tool they can watch. A call is made inert once, when it is recorded: its text
goes through `sanitise` (no escape sequence, no token), a GitHub path never carries its query
(a signed URL's signature is there) and the SSH command is the one the VM runs. Recording is
an append to a bounded ring plus a hand-off to the listeners (the `@` pane, the session file's
batched writer): nothing waits, so a call costs no I/O of its own.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vmkit_tui.domain.text import sanitise

GITHUB, SSH = "github", "ssh"
RING_SIZE = 2000  # calls kept in memory (the session file keeps them all, within its cap)

Listener = Callable[["Call"], None]


@dataclass(frozen=True, slots=True)
class Call:
    """One outgoing call. `status`: the HTTP status or the exit status, None when there was
    none (no answer, a dropped connection, a command still running or stopped by us)."""

    seq: int
    at: float  # when it started, Unix time
    kind: str  # GITHUB or SSH
    host: str  # the API's host[:port]; the SSH target user@host[:port]
    what: str  # "GET /repos/…" (path only); the command line as the VM runs it
    status: int | None
    duration: float  # seconds
    cached: bool = False  # a 304: the ETag cache answered, no rate limit spent
    remaining: int | None = None  # GitHub's x-ratelimit-remaining after this call
    note: str = ""  # "running", "stopped", why it failed

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%H:%M:%S")

    @property
    def outcome(self) -> str:
        """`200`, `304 cached`, `exit 0`, or the note when there is no status."""
        if self.status is None:
            return self.note or "no answer"
        if self.kind == SSH:
            return f"exit {self.status}"
        return f"{self.status} cached" if self.cached else str(self.status)

    def line(self) -> str:
        """One line for a terminal: `2026-05-01 10:00:00Z github 127.0.0.1 GET /… 200 0.012s`."""
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        extra = f" ({self.note})" if self.note and self.status is not None else ""
        left = f" {self.remaining} left" if self.remaining is not None else ""
        return (
            f"{stamp} {self.kind} {self.host} {self.what} "
            f"{self.outcome} {self.duration:.3f}s{left}{extra}"
        )

    def matches(self, needle: str) -> bool:
        """Whether `needle` (lower case) is in what a row shows: the `/` filter."""
        return needle in f"{self.kind} {self.host} {self.what} {self.outcome} {self.note}".lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": round(self.at, 3),
            "kind": self.kind,
            "host": self.host,
            "what": self.what,
            "status": self.status,
            "duration": round(self.duration, 4),
            "cached": self.cached,
            "remaining": self.remaining,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Call:
        """A call read back from a session file (sanitised again: the file is only text)."""
        status, remaining = data.get("status"), data.get("remaining")
        return cls(
            seq=int(data["seq"]),
            at=float(data["at"]),
            kind=sanitise(data["kind"]),
            host=sanitise(data["host"]),
            what=sanitise(data["what"]),
            status=status if isinstance(status, int) else None,
            duration=float(data["duration"]),
            cached=data.get("cached") is True,
            remaining=remaining if isinstance(remaining, int) else None,
            note=sanitise(data.get("note", "")),
        )


class CallLog:
    """The calls of this process, newest last, the oldest dropped beyond `size`; listeners hear
    of each one as it is recorded (they must not block: they run inside the caller)."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[Call] = deque(maxlen=size)
        self._listeners: list[Listener] = []
        self._seq = 0

    def calls(self) -> list[Call]:
        return list(self._ring)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear of every call from now on; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def github(
        self,
        host: str,
        endpoint: str,
        status: int | None,
        started: float,
        *,
        cached: bool = False,
        remaining: int | None = None,
        note: str = "",
    ) -> None:
        """A request that ended (`started`: its `time.perf_counter()`); `endpoint` is
        `METHOD /path`, already without its query."""
        self._add(GITHUB, host, endpoint, status, started, cached, remaining, note)

    def ssh(self, host: str, command: str, status: int | None, started: float, note: str) -> None:
        """A command that started (`note` "running") or ended."""
        self._add(SSH, host, command, status, started, False, None, note)

    def _add(
        self,
        kind: str,
        host: str,
        what: str,
        status: int | None,
        started: float,
        cached: bool,
        remaining: int | None,
        note: str,
    ) -> None:
        duration = time.perf_counter() - started
        self._seq += 1
        call = Call(
            self._seq,
            time.time() - duration,
            kind,
            sanitise(host),
            sanitise(what),
            status,
            duration,
            cached,
            remaining,
            sanitise(note) if note else "",
        )
        self._ring.append(call)
        for listener in self._listeners:
            listener(call)
