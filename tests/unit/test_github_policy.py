"""Pure client decisions: Link pagination, rate-limit waits, backoff, ETag cache, counters."""

from __future__ import annotations

import random

import pytest

from vmkit_tui.sources.github.policy import (
    CachedResponse,
    EtagCache,
    RequestStats,
    backoff_delay,
    parse_link_header,
    rate_limit_wait,
)

NOW = 1_780_000_000.0


def test_link_header_real_shape() -> None:
    value = (
        '<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", '
        '<https://api.github.com/repositories/1300192/issues?page=4>; rel="next", '
        '<https://api.github.com/repositories/1300192/issues?page=515>; rel="last", '
        '<https://api.github.com/repositories/1300192/issues?page=1>; rel="first"'
    )
    links = parse_link_header(value)
    assert links["next"] == "https://api.github.com/repositories/1300192/issues?page=4"
    assert links["last"].endswith("page=515") and set(links) == {"prev", "next", "last", "first"}


def test_link_header_absent_or_without_next() -> None:
    assert parse_link_header(None) == {}
    assert "next" not in parse_link_header('<https://h/x?page=1>; rel="first"')


def test_link_url_kept_verbatim_with_its_query() -> None:
    url = "https://api.github.com/repositories/9/actions/workflows/deploy.yml/runs?per_page=100&branch=main&page=2"
    assert parse_link_header(f'<{url}>; rel="next"')["next"] == url


def test_retry_after_wins() -> None:
    wait = rate_limit_wait(429, {"retry-after": "30"}, "", now=NOW)
    assert wait is not None and wait.seconds == 30 and wait.secondary and not wait.guessed


def test_primary_limit_waits_until_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}
    wait = rate_limit_wait(403, headers, "API rate limit exceeded for user ID 1.", now=NOW)
    assert wait is not None and wait.seconds == 121 and not wait.secondary


def test_reset_in_the_past_still_waits_a_moment() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)}
    wait = rate_limit_wait(429, headers, "", now=NOW)
    assert wait is not None and 0 < wait.seconds <= 1


def test_secondary_limit_without_headers_waits_a_minute_then_longer() -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    first = rate_limit_wait(403, {"x-ratelimit-remaining": "4000"}, message, now=NOW)
    second = rate_limit_wait(403, {}, message, now=NOW, attempt=1)
    assert first is not None and first.seconds == 60 and first.secondary and first.guessed
    assert second is not None and second.seconds == 120
    huge = rate_limit_wait(403, {}, message, now=NOW, attempt=30)
    assert huge is not None and huge.seconds == 900


def test_permission_403_is_not_a_rate_limit() -> None:
    headers = {"x-ratelimit-remaining": "4999"}
    assert rate_limit_wait(403, headers, "Resource not accessible by integration", now=NOW) is None
    assert rate_limit_wait(500, {"retry-after": "5"}, "", now=NOW) is None


def test_unparseable_retry_after_falls_back_to_reset() -> None:
    headers = {
        "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(NOW) + 10),
    }
    wait = rate_limit_wait(429, headers, "", now=NOW)
    assert wait is not None and wait.seconds == 11


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [[backoff_delay(attempt, rng) for _ in range(50)] for attempt in range(8)]
    for attempt, samples in enumerate(delays):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in samples)
        assert len(set(samples)) > 1  # jittered
    assert max(delays[-1]) <= 8.0 and min(delays[3]) > max(delays[0])


def test_etag_cache_keys_on_url_and_identity_and_evicts_oldest() -> None:
    cache = EtagCache(max_entries=2)
    cache.put("https://h/a?page=1", "tok1", CachedResponse('W/"1"', b"[1]", None))
    cache.put("https://h/a?page=2", "tok1", CachedResponse('W/"2"', b"[2]", "https://h/a?page=3"))
    assert cache.get("https://h/a?page=1", "tok2") is None  # another token: not shared
    assert cache.get("https://h/a?page=1", "tok1").etag == 'W/"1"'  # now most recent
    cache.put("https://h/b", "tok1", CachedResponse('"3"', b"{}", None))
    assert len(cache) == 2
    assert cache.get("https://h/a?page=2", "tok1") is None  # least recently used went
    assert cache.get("https://h/a?page=1", "tok1") is not None


def test_etag_cache_is_bounded_by_body_bytes_least_recently_used_first() -> None:
    cache = EtagCache(max_entries=100, max_bytes=1000)
    for name in "abc":
        cache.put(f"https://h/{name}", "tok", CachedResponse('"e"', b"x" * 300, None))
    assert cache.get("https://h/a", "tok") is not None  # a is now the most recent
    cache.put("https://h/d", "tok", CachedResponse('"e"', b"x" * 300, None))
    assert (len(cache), cache.nbytes) == (3, 900)
    assert cache.get("https://h/b", "tok") is None  # least recently used went
    assert all(cache.get(f"https://h/{name}", "tok") for name in "acd")
    cache.put("https://h/a", "tok", CachedResponse('"f"', b"x" * 50, None))  # replaced
    assert (len(cache), cache.nbytes) == (3, 650)
    cache.put("https://h/big", "tok", CachedResponse('"g"', b"x" * 1001, None))
    assert cache.get("https://h/big", "tok") is None and cache.nbytes == 650  # never fits
    cache.put("https://h/e", "tok", CachedResponse('"h"', b"x" * 700, None))
    assert [bool(cache.get(f"https://h/{n}", "tok")) for n in "acde"] == [True, False, False, True]
    assert cache.nbytes == 750


def test_stats_count_what_github_charges() -> None:
    stats = RequestStats(sent=10, not_modified=7)
    assert stats.counted == 3


@pytest.mark.parametrize("status", [200, 404, 502])
def test_non_limit_statuses(status: int) -> None:
    assert rate_limit_wait(status, {"x-ratelimit-remaining": "0"}, "rate limit", now=NOW) is None
