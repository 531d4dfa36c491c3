"""The client's pure decisions: pagination links, rate-limit waits, retry backoff, ETag cache.

Kept apart from the HTTP code so each rule is unit-tested on plain values.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub: "wait at least one minute" when it gives no header
MAX_SECONDARY_WAIT_S = 15 * 60.0
RESET_MARGIN_S = 1.0  # x-ratelimit-reset is whole seconds: wait past it
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?')
_RATE_LIMIT_WORDS = ("rate limit", "abuse detection")


def parse_link_header(value: str | None) -> dict[str, str]:
    """`Link: <url>; rel="next", …` → {"next": url, …}. URLs are used verbatim, never rebuilt."""
    links: dict[str, str] = {}
    for url, rels in _LINK.findall(value or ""):
        for rel in rels.split():
            links.setdefault(rel, url)
    return links


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    seconds: float
    secondary: bool  # a secondary (abuse) limit rather than the hourly budget
    guessed: bool = False  # GitHub named no wait: back off harder on each consecutive one


def rate_limit_wait(
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    now: float,
    attempt: int = 0,
) -> RateLimitWait | None:
    """How long GitHub asks us to wait, or None if this response is not a rate limit.

    GitHub's order: `retry-after` seconds; else, with `x-ratelimit-remaining: 0`, until
    `x-ratelimit-reset`; else (a secondary limit without headers) at least 60 s, doubling for
    each consecutive such limit (`attempt`). A 403 with remaining > 0 and no rate-limit wording
    is a permission error.
    """
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after")
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    worded = any(word in message.lower() for word in _RATE_LIMIT_WORDS)
    if status == 403 and retry_after is None and not exhausted and not worded:
        return None
    if retry_after is not None:
        try:
            return RateLimitWait(max(0.0, float(retry_after)), secondary=not exhausted)
        except ValueError:
            pass  # an HTTP-date or garbage: fall through to the other rules
    if exhausted:
        try:
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            reset = now + SECONDARY_LIMIT_WAIT_S
        return RateLimitWait(max(0.0, reset - now) + RESET_MARGIN_S, secondary=False)
    wait = min(MAX_SECONDARY_WAIT_S, SECONDARY_LIMIT_WAIT_S * 2 ** min(attempt, 8))
    return RateLimitWait(wait, secondary=True, guessed=True)


def backoff_delay(
    attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 8.0
) -> float:
    """Delay before retry number `attempt` (0-based): exponential, capped, half of it jittered
    so many clients do not retry in step."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 16))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(slots=True)
class RequestStats:
    """What the client sent; `counted` is what GitHub charges (a 304 is free)."""

    sent: int = 0
    not_modified: int = 0

    @property
    def counted(self) -> int:
        return self.sent - self.not_modified


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A 200's ETag and JSON as it came in: its bytes, not the parsed objects (which take
    several times the room, and hundreds of these stay for hours)."""

    etag: str
    content: bytes
    next_url: str | None


# What the ETag cache may hold in bodies. Every poll round asks again for each environment's run
# list (a page of 100 runs is ~0.7 MB) and each repo's tag listing, so that is the working set
# the cache must keep for its 304s to be free: 32 MiB holds it for ~40 environments; past it the
# least recently used bodies go first (a finished deploy's jobs, an old commit), and only the
# oldest polls start to cost a full answer again. The body cap (`body.MAX_JSON_BYTES`) is below
# it, so any body the client accepts fits.
CACHE_BYTES = 32 * 1024 * 1024


class EtagCache:
    """Bodies by (URL with query, token identity): sent back as If-None-Match; a 304 reuses
    the body. Keyed by the token's fingerprint (never the token) because GitHub varies
    responses on Authorization. Bounded by entries and by body bytes, least recently used
    first out."""

    def __init__(self, max_entries: int = 512, max_bytes: int = CACHE_BYTES) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedResponse] = OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self.nbytes = 0  # the bodies held (what the byte bound counts)

    def get(self, url: str, identity: str) -> CachedResponse | None:
        entry = self._entries.get((url, identity))
        if entry is not None:
            self._entries.move_to_end((url, identity))
        return entry

    def put(self, url: str, identity: str, entry: CachedResponse) -> None:
        old = self._entries.pop((url, identity), None)
        self.nbytes -= len(old.content) if old is not None else 0
        if len(entry.content) > self._max_bytes:
            return  # could never stay: keeping it would only push every other entry out
        self._entries[(url, identity)] = entry
        self.nbytes += len(entry.content)
        while len(self._entries) > self._max or self.nbytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= len(evicted.content)

    def __len__(self) -> int:
        return len(self._entries)
