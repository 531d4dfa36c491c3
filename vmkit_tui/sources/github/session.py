"""The HTTP side of the GitHub client: one token against one API base URL.

The rules it follows:
- Every GET is conditional (If-None-Match from an ETag cache); a 304 is free and reuses the body.
- Pagination follows `Link: rel="next"` verbatim (GitHub's are `/repositories/{id}/…` URLs).
- GETs (and the idempotent cancel) retry 5xx, timeouts and dropped connections with capped,
  jittered backoff; a request that must not be re-sent raises `ResponseLost` instead.
- Rate limits: wait as GitHub says when the wait is short, otherwise raise `RateLimited`; while
  limited, `rate_limited_until` says until when and no request is sent before then.
- Bodies are read with a cap (`body.py`): a JSON answer over MAX_JSON_BYTES is refused
  (`TooLarge`, never retried), a job log is kept to its tail and not read past MAX_LOG_READ.
- The token only ever appears inside `_BearerAuth`, and only on requests to the API origin;
  the signed job-log URL is fetched without it and never logged or put in an exception.

`GitHubClient` (client.py) adds the endpoints on top of `ApiSession`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import orjson

from vmkit_tui.domain.calls import CallLog
from vmkit_tui.domain.models import ValidationError, validate_repo
from vmkit_tui.domain.secret import Secret, install_log_redaction
from vmkit_tui.sources.github.body import (
    MAX_JSON_BYTES,
    MAX_LOG_READ,
    MIB,
    read_json_body,
    read_tail,
)
from vmkit_tui.sources.github.errors import (
    BadResponse,
    RateLimited,
    ResponseLost,
    Unavailable,
    github_message,
    status_error,
)
from vmkit_tui.sources.github.policy import (
    RETRYABLE_STATUSES,
    CachedResponse,
    EtagCache,
    RequestStats,
    backoff_delay,
    parse_link_header,
    rate_limit_wait,
)
from vmkit_tui.sources.github.results import RateLimit

log = logging.getLogger("vmkit_tui.sources.github")

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# httpx logs URLs at INFO, httpcore response headers (a signed Location) at DEBUG. A filter
# on a parent logger does not see its children's records, so each one is named.
_HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_CONNECT_FAILURES = (httpx.ConnectError, httpx.ConnectTimeout)  # nothing reached the server
_TRANSIENT = (httpx.TransportError, TimeoutError)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class _BearerAuth(httpx.Auth):
    """Adds the token, and only to requests for the API's own origin."""

    def __init__(self, token: Secret, origin: tuple[str, str, int | None]) -> None:
        self._token = token
        self._origin = origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request


def _origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    url = httpx.URL(url)
    return (url.scheme, url.host, url.port)


def _endpoint(method: str, url: httpx.URL) -> str:
    """'GET /repos/…' — path only: a query string may hold a signature."""
    return f"{method} {url.raw_path.split(b'?', 1)[0].decode('ascii', 'replace')}"


@dataclass(frozen=True, slots=True, repr=False)
class _Reply:
    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON (or None)
    text: str
    next_url: str | None
    url: httpx.URL
    endpoint: str

    def __repr__(self) -> str:  # headers may hold a signed Location: keep them out of tracebacks
        return f"<Reply {self.status} {self.endpoint}>"


class ApiSession:
    """Requests to one API base URL (`https://api.github.com`, `https://HOST/api/v3`, or the
    sandbox's `http://127.0.0.1:PORT`) under the rules above. Use `async with` or call
    `aclose()`."""

    def __init__(
        self,
        api_url: str,
        token: Secret,
        *,
        timeout: float,
        user_agent: str,
        clock: Callable[[], float],
        sleep: Sleep,
        rng: random.Random | None,
        max_retries: int,
        max_rate_limit_wait: float,
        max_log_bytes: int,
        cache_entries: int,
        on_rate_limit: Callable[[RateLimited], None] | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        if not isinstance(token, Secret):
            raise TypeError("token must be a Secret")
        self.api_url = _validate_api_url(api_url)
        self._auth = _BearerAuth(token, _origin(self.api_url))
        self._identity = token.fingerprint
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._max_retries = max_retries
        self._max_rate_limit_wait = max_rate_limit_wait
        self._max_log_bytes = max_log_bytes
        self._max_json_bytes = MAX_JSON_BYTES
        self._deadline = timeout * 2  # a total per attempt: httpx's read timeout is per read
        self._on_rate_limit = on_rate_limit
        self._cache = EtagCache(cache_entries)
        self._limited_until = 0.0
        self._limited_secondary = False
        self._guessed_limits = 0  # consecutive limits where GitHub named no wait
        self.stats = RequestStats()
        self.last_rate_limit: RateLimit | None = None
        self.calls: CallLog | None = None  # where each request is recorded (the `@` log)
        self._host = httpx.URL(self.api_url).netloc.decode("ascii", "replace")
        self._http = httpx.AsyncClient(
            headers={"User-Agent": user_agent},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            transport=transport,
        )
        install_log_redaction(*_HTTP_LOGGERS)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def token_fingerprint(self) -> str:
        """Which token this is, without the token (to remember what GitHub said about it)."""
        return self._identity

    @property
    def rate_limited_until(self) -> datetime | None:
        """When the current rate limit ends, or None if not limited."""
        if self._limited_until <= self._clock():
            return None
        return datetime.fromtimestamp(self._limited_until, UTC)

    def repo_url(self, repo: str, rest: str) -> str:
        """`{api}/repos/{owner}/{name}/{rest}`, the repo validated and each part one segment."""
        owner, name = validate_repo(repo).split("/")
        return f"{self.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/{rest}"

    async def _get(self, url: str, params: Mapping[str, str | int] | None = None) -> _Reply:
        return await self._request("GET", url, params=params)

    async def _collect(
        self,
        url: str,
        params: Mapping[str, str | int],
        key: str,
        max_pages: int,
        parser: Callable[[Any], T],
    ) -> list[T]:
        found: list[T] = []
        pages = self._pages(url, params, key, max_pages)
        async with aclosing(pages):
            async for reply, items in pages:
                found.extend(_parse(reply, parser, items))
        return found

    async def _pages(
        self,
        url: str,
        params: Mapping[str, str | int] | None,
        key: str | None,
        max_pages: int,
    ) -> AsyncGenerator[tuple[_Reply, list[Any]], None]:
        """Each page's items (`body[key]`, or the body for bare-array endpoints)."""
        next_url: str | None = url
        for _ in range(max_pages):
            if next_url is None:
                return
            reply = await self._get(next_url, params)
            items = reply.body.get(key) if key and isinstance(reply.body, dict) else reply.body
            if not isinstance(items, list):
                raise BadResponse(f"expected a list of {key or 'items'}", endpoint=reply.endpoint)
            yield reply, items
            next_url, params = reply.next_url, None  # the Link URL already carries the query
            if next_url is not None and _origin(next_url) != _origin(self.api_url):
                raise BadResponse("pagination link leaves the API host", endpoint=reply.endpoint)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        accept: Collection[int] = (200,),
        want_json: bool = True,
        safe: bool = True,
    ) -> _Reply:
        """Send one API request with the retry, rate-limit and cache rules. `safe` = may be
        re-sent after a lost answer (GET, cancel); `accept` = statuses the caller handles."""
        target = httpx.URL(url, params=params) if params else httpx.URL(url)
        endpoint = _endpoint(method, target)
        cached = self._cache.get(str(target), self._identity) if method == "GET" else None
        limited_attempt = 0
        failures = 0
        while True:
            await self._respect_rate_limit(endpoint)
            headers = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION}
            if cached is not None:
                headers["If-None-Match"] = cached.etag
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._deadline):
                    self.stats.sent += 1
                    request = self._http.build_request(method, target, headers=headers, json=json)
                    response = await self._http.send(request, auth=self._auth, stream=True)
                    try:  # capped: an endless or huge body is refused, never buffered
                        content = await read_json_body(response, endpoint, self._max_json_bytes)
                    finally:
                        await response.aclose()
            except ExceptionGroup as group:  # from inside the connection pool (anyio's connect)
                self._log_call(endpoint, None, started, note="cannot connect")
                raise Unavailable(
                    f"cannot connect: {_first_cause(group)}", endpoint=endpoint
                ) from None
            except _TRANSIENT as error:
                self._log_call(endpoint, None, started, note=type(error).__name__)
                if not safe and not isinstance(error, _CONNECT_FAILURES):
                    raise ResponseLost(
                        f"no answer ({type(error).__name__})", endpoint=endpoint
                    ) from None
                failures += 1
                if failures > self._max_retries:
                    raise Unavailable(
                        f"no answer after {failures} attempts ({type(error).__name__})",
                        endpoint=endpoint,
                    ) from None
                await self._sleep(backoff_delay(failures - 1, self._rng))
                continue
            status = response.status_code
            log.debug("%s → %d", endpoint, status)
            limit = RateLimit.from_headers(response.headers)
            self.last_rate_limit = limit or self.last_rate_limit
            if self.calls is not None:
                self.calls.github(
                    self._host,
                    endpoint,
                    status,
                    started,
                    cached=status == 304,
                    remaining=limit.remaining if limit else None,
                )
            if status == 304 and cached is not None:
                self.stats.not_modified += 1
                body = orjson.loads(cached.content)  # it parsed when it came in
                return _Reply(200, response.headers, body, "", cached.next_url, target, endpoint)
            message = github_message(status, content)
            wait = rate_limit_wait(
                status, response.headers, message, now=self._clock(), attempt=self._guessed_limits
            )
            self._guessed_limits = self._guessed_limits + 1 if wait and wait.guessed else 0
            if wait is not None:
                limited_attempt += 1
                self._limited_until = max(self._limited_until, self._clock() + wait.seconds)
                self._limited_secondary = wait.secondary
                limited = self._limited_error(endpoint, status, secondary=wait.secondary)
                if self._on_rate_limit is not None:
                    self._on_rate_limit(limited)
                if limited_attempt > self._max_retries or wait.seconds > self._max_rate_limit_wait:
                    raise limited
                continue  # _respect_rate_limit sleeps until the limit ends
            if status in RETRYABLE_STATUSES and status not in accept:
                if not safe:
                    raise ResponseLost(f"{status} {message}", endpoint=endpoint, status=status)
                failures += 1
                if failures > self._max_retries:
                    raise Unavailable(
                        f"{status} after {failures} attempts", endpoint=endpoint, status=status
                    )
                await self._sleep(backoff_delay(failures - 1, self._rng))
                continue
            if status not in accept:
                raise status_error(status, message, response.headers, endpoint)
            return self._reply(response, content, target, endpoint, want_json=want_json)

    def _reply(
        self,
        response: httpx.Response,
        content: bytes,
        target: httpx.URL,
        endpoint: str,
        *,
        want_json: bool,
    ) -> _Reply:
        body: Any = None
        if want_json and content:
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                raise BadResponse(
                    f"malformed JSON in a {response.status_code} response ({len(content)} bytes)",
                    endpoint=endpoint,
                    status=response.status_code,
                ) from None
        next_url = parse_link_header(response.headers.get("link")).get("next")
        reply = _Reply(
            response.status_code,
            response.headers,
            body,
            "" if want_json else content.decode("utf-8", "replace"),
            next_url,
            target,
            endpoint,
        )
        etag = response.headers.get("etag")
        if etag and want_json and response.request.method == "GET" and response.status_code == 200:
            self._cache.put(str(target), self._identity, CachedResponse(etag, content, next_url))
        return reply

    def _log_call(self, endpoint: str, status: int | None, started: float, note: str) -> None:
        if self.calls is not None:
            self.calls.github(self._host, endpoint, status, started, note=note)

    async def _respect_rate_limit(self, endpoint: str) -> None:
        """Never send while limited: wait if the limit ends soon, else raise."""
        remaining = self._limited_until - self._clock()
        if remaining <= 0:
            return
        if remaining > self._max_rate_limit_wait:
            raise self._limited_error(endpoint, None, secondary=self._limited_secondary)
        await self._sleep(remaining)

    def _limited_error(self, endpoint: str, status: int | None, *, secondary: bool) -> RateLimited:
        return RateLimited(
            wait=max(0.0, self._limited_until - self._clock()),
            until=datetime.fromtimestamp(self._limited_until, UTC),
            secondary=secondary,
            endpoint=endpoint,
            status=status,
        )

    async def _fetch_blob(self, reply: _Reply) -> tuple[str, bool] | str:
        """Download the signed log URL from a 302: (text, truncated), or why it failed.

        No auth and a fresh request (the signature is the credential). Nothing here raises or
        logs, so the URL never reaches a traceback or a log record."""
        location = reply.headers.get("location")
        if not location:
            return "redirect without a Location"
        url = reply.url.join(location)
        if url.scheme != "https" and not (url.scheme == "http" and url.host in _LOOPBACK):
            return "redirect to a non-https URL"
        started, status = time.perf_counter(), None
        try:
            async with asyncio.timeout(self._deadline * 3):
                async with self._http.stream("GET", url, auth=None) as response:
                    status = response.status_code
                    if response.status_code != 200:
                        return f"log storage answered {response.status_code}"
                    # keep the tail (errors are there); an endless log stops at MAX_LOG_READ
                    body = await read_tail(response, keep=self._max_log_bytes, stop=MAX_LOG_READ)
        except _TRANSIENT as error:
            return f"log storage unreachable ({type(error).__name__})"
        finally:  # the path only: the signature is in the query
            if self.calls is not None:
                path = _endpoint("GET", url)
                self.calls.github(url.netloc.decode("ascii", "replace"), path, status, started)
        text = body.data.decode("utf-8", errors="replace")
        dropped = body.total > len(body.data)
        if dropped:
            text = text.partition("\n")[2]  # drop the partial first line
        if body.stopped:
            text = text.rpartition("\n")[0] + (
                f"\n[vmkit-tui] log truncated at {MAX_LOG_READ // MIB} MB: the rest was not read"
            )
        return text, dropped


def _validate_api_url(api_url: str) -> str:
    parts = urlsplit(api_url.rstrip("/"))
    loopback = parts.hostname in _LOOPBACK
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValidationError(f"the GitHub API URL must use https: {api_url!r:.100}")
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ValidationError(f"not a GitHub API base URL: {api_url!r:.100}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or len(parts.hostname) > 253:
        raise ValidationError(f"not a GitHub API base URL (port or host): {api_url!r:.100}")
    return api_url.rstrip("/")


def valid_id(value: int) -> int:
    """A GitHub id (run, job, attempt, deployment) before it goes into a URL path."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(f"invalid id: {value!r:.30}")
    return value


def _first_cause(group: BaseExceptionGroup[BaseException]) -> str:
    """The first real error inside an exception group, as 'Type: message'."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _parse(reply: _Reply, parser: Callable[[Any], T], items: list[Any]) -> list[T]:
    try:
        return [parser(item) for item in items]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadResponse(
            f"unexpected response shape: {type(error).__name__}: {error}", endpoint=reply.endpoint
        ) from None
