"""Async GitHub REST client for deploy watching, cancelling and rollback dispatch (httpx).

Facts it relies on are in github-api.md; the rules it follows:
- Every GET is conditional (If-None-Match from an ETag cache); a 304 is free and reuses the body.
- Pagination follows `Link: rel="next"` verbatim (GitHub's are `/repositories/{id}/…` URLs).
- GETs (and the idempotent cancel) retry 5xx, timeouts and dropped connections with capped,
  jittered backoff. A dispatch is never blindly re-sent: when its answer is lost the run is
  looked up by the request id it carries, and the POST is repeated only if no run exists.
- Rate limits: wait as GitHub says when the wait is short, otherwise raise `RateLimited`; while
  limited, `rate_limited_until` says until when and no request is sent before then.
- The token only ever appears inside `_BearerAuth`, and only on requests to the API origin;
  the signed job-log URL is fetched without it and never logged or put in an exception.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Generator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import orjson

from vmkit_tui import __version__
from vmkit_tui.domain.models import ValidationError, validate_name, validate_repo, validate_sha
from vmkit_tui.domain.secret import Secret, install_log_redaction
from vmkit_tui.sources.github.errors import (
    AuthError,
    BadResponse,
    GitHubError,
    NotFound,
    RateLimited,
    Rejected,
    Unavailable,
)
from vmkit_tui.sources.github.job_log import JobLog, parse_job_log
from vmkit_tui.sources.github.policy import (
    RETRYABLE_STATUSES,
    CachedResponse,
    EtagCache,
    RequestStats,
    backoff_delay,
    parse_link_header,
    rate_limit_wait,
)
from vmkit_tui.sources.github.results import (
    CancelOutcome,
    Commit,
    CompareResult,
    DispatchResult,
    ImageCheck,
    ImageState,
    Job,
    RateLimit,
    WorkflowRun,
)

log = logging.getLogger("vmkit_tui.sources.github")

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{7,63}")
_IMAGE = re.compile(r"ghcr\.io/([a-z0-9][a-z0-9-]{0,38})/([a-z0-9][a-z0-9._/-]{0,199})")
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


class ResponseLost(Unavailable):
    """A request that may have reached GitHub got no usable answer (timeout, dropped
    connection, 5xx): its effect is unknown, so it must not be blindly re-sent."""


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


class GitHubClient:
    """One token, one API base URL (`https://api.github.com`, `https://HOST/api/v3`, or the
    sandbox's `http://127.0.0.1:PORT`). Use `async with` or call `aclose()`."""

    def __init__(
        self,
        api_url: str,
        token: Secret,
        *,
        timeout: float = 10.0,
        user_agent: str = f"vmkit-tui/{__version__}",
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_retries: int = 3,
        max_rate_limit_wait: float = 90.0,
        max_log_bytes: int = 32 * 1024 * 1024,
        dispatch_lookup_timeout: float = 30.0,
        dispatch_poll_interval: float = 2.0,
        cache_entries: int = 512,
        on_rate_limit: Callable[[RateLimited], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._dispatch_lookup_timeout = dispatch_lookup_timeout
        self._dispatch_poll_interval = dispatch_poll_interval
        self._deadline = timeout * 2  # a total per attempt: httpx's read timeout is per read
        self._on_rate_limit = on_rate_limit
        self._cache = EtagCache(cache_entries)
        self._limited_until = 0.0
        self._limited_secondary = False
        self._guessed_limits = 0  # consecutive limits where GitHub named no wait
        self._owner_kinds: dict[str, str] = {}  # GHCR owner → "orgs" | "users", once known
        self.stats = RequestStats()
        self.last_rate_limit: RateLimit | None = None
        self._http = httpx.AsyncClient(
            headers={"User-Agent": user_agent},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            transport=transport,
        )
        install_log_redaction(*_HTTP_LOGGERS)

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def rate_limited_until(self) -> datetime | None:
        """When the current rate limit ends, or None if not limited."""
        if self._limited_until <= self._clock():
            return None
        return datetime.fromtimestamp(self._limited_until, UTC)

    # ---------------------------------------------------------------- operations

    async def list_runs(
        self,
        repo: str,
        workflow: str,
        *,
        branch: str | None = None,
        event: str | None = None,
        status: str | None = None,
        created: str | datetime | None = None,
        head_sha: str | None = None,
        per_page: int = 100,
        max_pages: int = 10,
    ) -> list[WorkflowRun]:
        """Runs of one workflow (file name or id), newest first. `created` is GitHub's date
        query (`>=2026-05-01`) or a datetime meaning "at or after"."""
        params: dict[str, str | int] = {
            "per_page": max(1, min(per_page, 100)),
            "exclude_pull_requests": "true",
        }
        if branch is not None:
            params["branch"] = _validate_ref(branch)
        if event is not None:
            params["event"] = validate_name(event, "event")
        if status is not None:
            params["status"] = validate_name(status, "status")
        if created is not None:
            params["created"] = _created_query(created)
        if head_sha is not None:  # exact match on GitHub: never short, never empty
            params["head_sha"] = validate_sha(head_sha)
        url = self._repo_url(repo, f"actions/workflows/{_path(validate_name(workflow))}/runs")
        return await self._collect(url, params, "workflow_runs", max_pages, WorkflowRun.from_api)

    async def get_run(self, repo: str, run_id: int) -> WorkflowRun:
        url = self._repo_url(repo, f"actions/runs/{_id(run_id)}")
        reply = await self._get(url, {"exclude_pull_requests": "true"})
        return _parse(reply, WorkflowRun.from_api, [reply.body])[0]

    async def list_jobs(self, repo: str, run_id: int) -> list[Job]:
        """Jobs of the run's latest attempt, with their steps (live progress while it runs)."""
        url = self._repo_url(repo, f"actions/runs/{_id(run_id)}/jobs")
        return await self._collect(url, {"per_page": 100}, "jobs", 10, Job.from_api)

    async def job_log(self, repo: str, job_id: int) -> JobLog | None:
        """The job's full log, or None while it is not available yet (GitHub answers 404 until
        the job completes). The 302 is followed by hand, without the Authorization header."""
        url = self._repo_url(repo, f"actions/jobs/{_id(job_id)}/logs")
        for attempt in range(self._max_retries + 1):
            reply = await self._request("GET", url, accept=(200, 302, 404), want_json=False)
            if reply.status == 404:
                return None
            if reply.status == 200:
                return parse_job_log(reply.text)
            blob = await self._fetch_blob(reply)
            if isinstance(blob, tuple):
                text, truncated = blob
                return parse_job_log(text, truncated=truncated)
            if attempt < self._max_retries:
                await self._sleep(backoff_delay(attempt, self._rng))
        raise Unavailable(f"job log download failed: {blob}", endpoint=reply.endpoint)

    async def cancel(self, repo: str, run_id: int) -> CancelOutcome:
        """Ask the run to stop (it does so at its current step, asynchronously)."""
        return await self._cancel(repo, run_id, "cancel")

    async def force_cancel(self, repo: str, run_id: int) -> CancelOutcome:
        """Stop a run that ignored `cancel` (bypasses `always()` conditions)."""
        return await self._cancel(repo, run_id, "force-cancel")

    async def dispatch(
        self,
        repo: str,
        workflow: str,
        ref: str,
        inputs: Mapping[str, str],
        request_id: str,
    ) -> DispatchResult:
        """Start the workflow on branch `ref` with `inputs` (+ `request_id`, which the workflow's
        run-name shows, so the run can be found when GitHub does not return its id)."""
        if not _REQUEST_ID.fullmatch(request_id):
            raise ValidationError(f"invalid request id: {request_id!r:.70}")
        if inputs.get("request_id", request_id) != request_id:
            raise ValidationError("inputs['request_id'] differs from request_id")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()):
            raise ValidationError("workflow_dispatch inputs must be strings")
        ref = _validate_ref(ref)
        url = self._repo_url(repo, f"actions/workflows/{_path(validate_name(workflow))}/dispatches")
        body: dict[str, Any] = {
            "ref": ref,
            "inputs": {**inputs, "request_id": request_id},
            "return_run_details": True,
        }
        for _attempt in range(self._max_retries + 1):
            try:
                reply = await self._request("POST", url, json=body, accept=(200, 204), safe=False)
            except Rejected as error:
                # GHES ≤ 3.20 rejects the new flag: nothing was started, so send it without.
                if "return_run_details" in body and "return_run_details" in str(error):
                    del body["return_run_details"]
                    continue
                raise
            except ResponseLost:
                found = await self._await_dispatched_run(repo, workflow, ref, request_id)
                if found is not None:
                    return found
                continue  # no run carries our request id: the dispatch never happened
            if reply.status == 200:
                return _parse(reply, DispatchResult.from_api, [reply.body])[0]
            found = await self._await_dispatched_run(repo, workflow, ref, request_id)
            return found or DispatchResult(None, None, None)
        raise Unavailable(
            f"dispatch got no answer after {self._max_retries + 1} attempts and no run with "
            f"request id {request_id} exists",
            endpoint=_endpoint("POST", httpx.URL(url)),
        )

    async def find_dispatched_run(
        self, repo: str, workflow: str, request_id: str, *, ref: str | None = None
    ) -> WorkflowRun | None:
        """The dispatched run whose title carries `request_id`, among the newest ones."""
        runs = await self.list_runs(
            repo, workflow, event="workflow_dispatch", branch=ref, per_page=30, max_pages=1
        )
        matching = [run for run in runs if request_id in run.display_title]
        return min(matching, key=lambda run: run.id) if matching else None

    async def get_commit(self, repo: str, sha: str) -> Commit | None:
        """The commit, or None if the repository does not have it."""
        url = self._repo_url(repo, f"commits/{validate_sha(sha)}")
        try:
            reply = await self._get(url)
        except (NotFound, Rejected) as error:
            if isinstance(error, Rejected) and error.status != 422:
                raise
            return None  # GitHub: 404, or 422 "No commit found for SHA"
        return _parse(reply, Commit.from_api, [reply.body])[0]

    async def compare(self, repo: str, base: str, head: str) -> CompareResult:
        """What `head` adds over `base`: for a rollback, compare(target, current) lists what
        the rollback steps back over (migrations included)."""
        basehead = f"{_path(_validate_ref(base))}...{_path(_validate_ref(head))}"
        reply = await self._get(self._repo_url(repo, f"compare/{basehead}"))
        return _parse(reply, CompareResult.from_api, [reply.body])[0]

    async def image_tags_present(self, image: str, sha: str, *, max_pages: int = 20) -> ImageCheck:
        """Is `image:sha` still in GHCR? Never says "missing" unless the versions were listed:
        without read:packages (GitHub answers 403 or 404) the answer is "cannot check"."""
        validate_sha(sha)
        match = _IMAGE.fullmatch(image)
        if match is None:
            return ImageCheck(ImageState.CANNOT_CHECK, f"{image[:100]!r} is not a ghcr.io image")
        owner, name = match.groups()
        package = quote(name, safe="")  # app/api → app%2Fapi
        kinds = [self._owner_kinds[owner]] if owner in self._owner_kinds else ["orgs", "users"]
        for kind in kinds:
            url = f"{self.api_url}/{kind}/{owner}/packages/container/{package}/versions"
            try:
                pages, more = 0, False
                listing = self._pages(url, {"per_page": 100}, None, max_pages)
                async with aclosing(listing):
                    async for reply, versions in listing:
                        pages, more = pages + 1, reply.next_url is not None
                        if any(sha in _tags(version) for version in versions):
                            self._owner_kinds[owner] = kind
                            return ImageCheck(ImageState.PRESENT)
            except NotFound:
                continue
            except AuthError as error:
                if error.status == 401:
                    raise
                return ImageCheck(
                    ImageState.CANNOT_CHECK,
                    "the token cannot read packages (GHCR needs a classic token with "
                    f"read:packages: `gh auth refresh -s read:packages`): {error}",
                )
            self._owner_kinds[owner] = kind
            if more:  # stopped at max_pages with versions left unread
                return ImageCheck(
                    ImageState.CANNOT_CHECK, f"tag not among the newest {pages * 100} versions"
                )
            return ImageCheck(ImageState.MISSING)
        return ImageCheck(
            ImageState.CANNOT_CHECK,
            f"package ghcr.io/{owner}/{name} not found, or the token lacks read:packages",
        )

    async def rate_limit(self) -> RateLimit:
        """The core budget (this call itself is free of the primary limit)."""
        reply = await self._request("GET", f"{self.api_url}/rate_limit")
        return _parse(reply, RateLimit.from_api, [reply.body])[0]

    # ---------------------------------------------------------------- plumbing

    def _repo_url(self, repo: str, rest: str) -> str:
        return f"{self.api_url}/repos/{validate_repo(repo)}/{rest}"

    async def _cancel(self, repo: str, run_id: int, action: str) -> CancelOutcome:
        url = self._repo_url(repo, f"actions/runs/{_id(run_id)}/{action}")
        # Repeating a cancel is harmless (202 again, or 409 once finished): safe to retry.
        reply = await self._request("POST", url, accept=(202, 409), want_json=False)
        return CancelOutcome.REQUESTED if reply.status == 202 else CancelOutcome.ALREADY_FINISHED

    async def _await_dispatched_run(
        self, repo: str, workflow: str, ref: str, request_id: str
    ) -> DispatchResult | None:
        """Runs appear a few seconds after the dispatch: look until the lookup timeout."""
        give_up = self._clock() + self._dispatch_lookup_timeout
        while True:
            run = await self.find_dispatched_run(repo, workflow, request_id, ref=ref)
            if run is not None:
                return DispatchResult.from_run(run, self._repo_url(repo, f"actions/runs/{run.id}"))
            if self._clock() >= give_up:
                return None
            await self._sleep(self._dispatch_poll_interval)

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
    ) -> AsyncIterator[tuple[_Reply, list[Any]]]:
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
            try:
                async with asyncio.timeout(self._deadline):
                    self.stats.sent += 1
                    response = await self._http.request(
                        method, target, headers=headers, json=json, auth=self._auth
                    )
            except _TRANSIENT as error:
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
            self.last_rate_limit = RateLimit.from_headers(response.headers) or self.last_rate_limit
            if status == 304 and cached is not None:
                self.stats.not_modified += 1
                return _Reply(
                    200, response.headers, cached.body, "", cached.next_url, target, endpoint
                )
            message = _github_message(response)
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
                raise _status_error(status, message, response.headers, endpoint)
            return self._reply(response, target, endpoint, want_json=want_json)

    def _reply(
        self, response: httpx.Response, target: httpx.URL, endpoint: str, *, want_json: bool
    ) -> _Reply:
        body: Any = None
        if want_json and response.content:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise BadResponse(
                    f"malformed JSON in a {response.status_code} response "
                    f"({len(response.content)} bytes)",
                    endpoint=endpoint,
                    status=response.status_code,
                ) from None
        next_url = parse_link_header(response.headers.get("link")).get("next")
        reply = _Reply(
            response.status_code,
            response.headers,
            body,
            "" if want_json else response.text,
            next_url,
            target,
            endpoint,
        )
        etag = response.headers.get("etag")
        if etag and want_json and response.request.method == "GET" and response.status_code == 200:
            self._cache.put(str(target), self._identity, CachedResponse(etag, body, next_url))
        return reply

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
        kept = bytearray()
        dropped = False
        try:
            async with asyncio.timeout(self._deadline * 3):
                async with self._http.stream("GET", url, auth=None) as response:
                    if response.status_code != 200:
                        return f"log storage answered {response.status_code}"
                    async for chunk in response.aiter_bytes():
                        kept += chunk
                        if len(kept) > self._max_log_bytes:  # keep the tail: errors are there
                            del kept[: len(kept) - self._max_log_bytes]
                            dropped = True
        except _TRANSIENT as error:
            return f"log storage unreachable ({type(error).__name__})"
        text = kept.decode("utf-8", errors="replace")
        if dropped:
            text = text.partition("\n")[2]  # drop the partial first line
        return text, dropped


def _validate_api_url(api_url: str) -> str:
    parts = urlsplit(api_url.rstrip("/"))
    loopback = parts.hostname in _LOOPBACK
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValidationError(f"the GitHub API URL must use https: {api_url!r:.100}")
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ValidationError(f"not a GitHub API base URL: {api_url!r:.100}")
    return api_url.rstrip("/")


def _validate_ref(ref: str) -> str:
    if not isinstance(ref, str) or not _REF.fullmatch(ref) or ".." in ref:
        raise ValidationError(f"invalid git ref: {ref!r:.60}")
    return ref


def _id(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(f"invalid id: {value!r:.30}")
    return value


def _path(segment: str) -> str:
    return quote(segment, safe="/")


def _created_query(created: str | datetime) -> str:
    if isinstance(created, datetime):
        if created.tzinfo is None:
            raise ValidationError("created must be UTC-aware")
        return f">={created.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    if not re.fullmatch(r"[<>=.0-9TZ:+-]{4,60}", created):
        raise ValidationError(f"invalid created filter: {created!r:.60}")
    return created


def _tags(version: Any) -> list[str]:
    metadata = version.get("metadata") if isinstance(version, dict) else None
    container = metadata.get("container") if isinstance(metadata, dict) else None
    tags = container.get("tags") if isinstance(container, dict) else None
    return tags if isinstance(tags, list) else []


def _parse(reply: _Reply, parser: Callable[[Any], T], items: list[Any]) -> list[T]:
    try:
        return [parser(item) for item in items]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadResponse(
            f"unexpected response shape: {type(error).__name__}: {error}", endpoint=reply.endpoint
        ) from None


def _github_message(response: httpx.Response) -> str:
    """GitHub's `message` field of an error body (never the raw body: it can be huge)."""
    if response.status_code < 300 or not response.content:
        return ""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def _status_error(status: int, message: str, headers: httpx.Headers, endpoint: str) -> GitHubError:
    if status == 401:
        return AuthError(
            f"401 bad credentials: the token is invalid or expired ({message})",
            endpoint=endpoint,
            status=status,
        )
    if status == 403:
        needs = headers.get("x-accepted-github-permissions")
        hint = f" (needs {needs})" if needs else ""
        if headers.get("x-github-sso"):
            hint += " (authorise the token for the organisation's SSO)"
        return AuthError(f"403 forbidden: {message}{hint}", endpoint=endpoint, status=status)
    if status == 404:
        return NotFound(f"404 not found: {message}", endpoint=endpoint, status=status)
    if 400 <= status < 500:
        return Rejected(f"{status}: {message}", endpoint=endpoint, status=status)
    if 500 <= status < 600:
        return Unavailable(f"{status}: {message}", endpoint=endpoint, status=status)
    return BadResponse(f"unexpected status {status}", endpoint=endpoint, status=status)
