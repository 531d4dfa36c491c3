"""Fault injection and request recording for the sandbox GitHub server.

Tests arm faults on `GitHubSandbox.faults` and read what the client sent in
`GitHubSandbox.requests`. A fault applies to requests matching its method and path pattern
(`fnmatch`, on the path without the query), for `count` responses (None: until cleared), in the
order the faults were added. The token never reaches a record: only whether an Authorization
header was present.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # a 5xx with GitHub's error body
    SECONDARY_RATE_LIMIT = "secondary_rate_limit"  # 403 (or 429), retry-after optional
    TOO_MANY_REQUESTS = "too_many_requests"  # 429 with retry-after
    SLOW = "slow"  # the normal response, after `delay` simulated seconds
    MALFORMED_JSON = "malformed_json"  # 200, JSON content type, truncated body
    DROP_CONNECTION = "drop_connection"  # the socket closes without a response
    DISPATCH_LOST = "dispatch_lost"  # the dispatch creates its run, then the socket closes


@dataclass(eq=False, slots=True)
class Fault:
    kind: FaultKind
    method: str = "*"
    path: str = "*"
    count: int | None = 1
    status: int = 502
    retry_after: int | None = None
    rate_headers: bool = True  # False: no x-ratelimit-* headers on the faulty response either
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(method.upper(), self.method.upper()) and fnmatch.fnmatchcase(
            path, self.path
        )

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count


class FaultPlan:
    """The armed faults. Convenience methods return the `Fault` so tests can read `hits`."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault for this request, counted as used."""
        for fault in self._faults:
            if not fault.exhausted and fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    def server_errors(
        self, count: int | None = 1, *, status: int = 502, method: str = "*", path: str = "*"
    ) -> Fault:
        return self.add(Fault(FaultKind.SERVER_ERROR, method, path, count, status=status))

    def secondary_rate_limit(
        self,
        count: int | None = 1,
        *,
        retry_after: int | None = 60,
        status: int = 403,
        rate_headers: bool = True,
        method: str = "*",
        path: str = "*",
    ) -> Fault:
        return self.add(
            Fault(
                FaultKind.SECONDARY_RATE_LIMIT,
                method,
                path,
                count,
                status=status,
                retry_after=retry_after,
                rate_headers=rate_headers,
            )
        )

    def too_many_requests(
        self, count: int | None = 1, *, retry_after: int = 30, method: str = "*", path: str = "*"
    ) -> Fault:
        return self.add(
            Fault(
                FaultKind.TOO_MANY_REQUESTS,
                method,
                path,
                count,
                status=429,
                retry_after=retry_after,
            )
        )

    def slow(
        self, seconds: float, count: int | None = 1, *, method: str = "*", path: str = "*"
    ) -> Fault:
        return self.add(Fault(FaultKind.SLOW, method, path, count, delay=seconds))

    def malformed_json(self, count: int | None = 1, *, method: str = "*", path: str = "*") -> Fault:
        return self.add(Fault(FaultKind.MALFORMED_JSON, method, path, count, status=200))

    def drop_connection(
        self, count: int | None = 1, *, method: str = "*", path: str = "*"
    ) -> Fault:
        return self.add(Fault(FaultKind.DROP_CONNECTION, method, path, count))

    def lose_dispatch_response(self, count: int | None = 1, *, path: str = "*/dispatches") -> Fault:
        return self.add(Fault(FaultKind.DISPATCH_LOST, "POST", path, count))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it, minus the token."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str] = field(default_factory=dict)  # without Authorization
    authorized: bool = False  # an Authorization header was sent
    status: int | None = None  # None: the connection was dropped without a response
    at: datetime | None = None  # simulated time
    fault: FaultKind | None = None
    counted: bool = False  # it cost primary rate-limit budget (304s, faults, logs do not)
