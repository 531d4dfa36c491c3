"""The GitHub REST endpoints vmkit-tui uses: runs and jobs to watch deploys, job logs,
cancel, rollback dispatch, commits and comparisons, GHCR image tags, the rate limit.

Requests go through `ApiSession` (conditional GETs, retries, rate limits, pagination). A
dispatch is never blindly re-sent: when its answer is lost the run is looked up by the request
id it carries, and the POST is repeated only if no run exists.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from vmkit_tui import __version__
from vmkit_tui.domain.eligibility import RegistryTags
from vmkit_tui.domain.models import ValidationError, validate_name, validate_sha
from vmkit_tui.domain.secret import Secret
from vmkit_tui.sources.github.browse import RepoBrowsing
from vmkit_tui.sources.github.deployments import DeploymentsApi
from vmkit_tui.sources.github.errors import (
    AuthError,
    NotFound,
    RateLimited,
    Rejected,
    ResponseLost,
    Unavailable,
)
from vmkit_tui.sources.github.job_log import JobLog, parse_job_log
from vmkit_tui.sources.github.policy import backoff_delay
from vmkit_tui.sources.github.results import (
    CancelOutcome,
    Commit,
    CompareResult,
    DispatchResult,
    Job,
    RateLimit,
    WorkflowRun,
)
from vmkit_tui.sources.github.session import Sleep, _endpoint, _parse, valid_id

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{7,63}")
_IMAGE = re.compile(r"ghcr\.io/([a-z0-9][a-z0-9-]{0,38})/([a-z0-9][a-z0-9._/-]{0,199})")


class GitHubClient(RepoBrowsing, DeploymentsApi):
    """The endpoints, on one token and one API base URL. Use `async with` or call `aclose()`."""

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
        super().__init__(
            api_url,
            token,
            timeout=timeout,
            user_agent=user_agent,
            clock=clock,
            sleep=sleep,
            rng=rng,
            max_retries=max_retries,
            max_rate_limit_wait=max_rate_limit_wait,
            max_log_bytes=max_log_bytes,
            cache_entries=cache_entries,
            on_rate_limit=on_rate_limit,
            transport=transport,
        )
        self._dispatch_lookup_timeout = dispatch_lookup_timeout
        self._dispatch_poll_interval = dispatch_poll_interval
        self._owner_kinds: dict[str, str] = {}  # GHCR owner → "orgs" | "users", once known

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
        url = self.repo_url(repo, f"actions/workflows/{_path(validate_name(workflow))}/runs")
        return await self._collect(url, params, "workflow_runs", max_pages, WorkflowRun.from_api)

    async def get_run(self, repo: str, run_id: int) -> WorkflowRun:
        url = self.repo_url(repo, f"actions/runs/{valid_id(run_id)}")
        reply = await self._get(url, {"exclude_pull_requests": "true"})
        return _parse(reply, WorkflowRun.from_api, [reply.body])[0]

    async def get_run_attempt(self, repo: str, run_id: int, attempt: int) -> WorkflowRun:
        """The run as it was in one attempt (a re-run replaces what `get_run` shows)."""
        url = self.repo_url(repo, f"actions/runs/{valid_id(run_id)}/attempts/{valid_id(attempt)}")
        reply = await self._get(url, {"exclude_pull_requests": "true"})
        return _parse(reply, WorkflowRun.from_api, [reply.body])[0]

    async def list_jobs(self, repo: str, run_id: int, attempt: int | None = None) -> list[Job]:
        """Jobs of one attempt of the run (None: its latest), with their steps (live progress
        while it runs). A re-run's jobs are new jobs: each attempt has its own."""
        where = f"actions/runs/{valid_id(run_id)}"
        if attempt is not None:
            where += f"/attempts/{valid_id(attempt)}"
        url = self.repo_url(repo, f"{where}/jobs")
        return await self._collect(url, {"per_page": 100}, "jobs", 10, Job.from_api)

    async def job_log(self, repo: str, job_id: int) -> JobLog | None:
        """The job's full log, or None while it is not available yet (GitHub answers 404 until
        the job completes). The 302 is followed by hand, without the Authorization header."""
        url = self.repo_url(repo, f"actions/jobs/{valid_id(job_id)}/logs")
        for attempt in range(self._max_retries + 1):
            reply = await self._request("GET", url, accept=(200, 302, 404), want_json=False)
            if reply.status == 404:
                return None
            # parsed in a thread: a log of megabytes would stall the event loop (the UI's)
            if reply.status == 200:
                return await asyncio.to_thread(parse_job_log, reply.text)
            blob = await self._fetch_blob(reply)
            if isinstance(blob, tuple):
                text, truncated = blob
                return await asyncio.to_thread(parse_job_log, text, truncated=truncated)
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
        url = self.repo_url(repo, f"actions/workflows/{_path(validate_name(workflow))}/dispatches")
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
        url = self.repo_url(repo, f"commits/{validate_sha(sha)}")
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
        basehead = f"{_refs(_validate_ref(base))}...{_refs(_validate_ref(head))}"
        reply = await self._get(self.repo_url(repo, f"compare/{basehead}"))
        return _parse(reply, CompareResult.from_api, [reply.body])[0]

    async def image_tags(self, image: str, *, max_pages: int = 20) -> RegistryTags:
        """Every tag of `image` (ghcr.io/owner/name) among its newest `max_pages` × 100
        versions, in one conditional listing (unchanged pages cost 304s). Never "no tags"
        unless the versions were listed: without read:packages (GitHub answers 403 or 404)
        the tags are None and `problem` says why."""
        match = _IMAGE.fullmatch(image)
        if match is None:
            return RegistryTags(image, None, f"{image[:100]!r} is not a ghcr.io image")
        owner, name = match.groups()
        package = quote(name, safe="")  # app/api → app%2Fapi
        kinds = [self._owner_kinds[owner]] if owner in self._owner_kinds else ["orgs", "users"]
        for kind in kinds:
            url = f"{self.api_url}/{kind}/{_path(owner)}/packages/container/{package}/versions"
            try:
                tags, more = set[str](), False
                listing = self._pages(url, {"per_page": 100}, None, max_pages)
                async with aclosing(listing):
                    async for reply, versions in listing:
                        more = reply.next_url is not None
                        tags.update(tag for version in versions for tag in _tags(version))
            except NotFound:
                continue
            except AuthError as error:
                if error.status == 401:
                    raise
                return RegistryTags(
                    image,
                    None,
                    "the token cannot read packages (GHCR needs a classic token with "
                    f"read:packages: `gh auth refresh -s read:packages`): {error}",
                )
            self._owner_kinds[owner] = kind
            return RegistryTags(image, frozenset(tags), complete=not more)
        return RegistryTags(
            image,
            None,
            f"package ghcr.io/{owner}/{name} not found, or the token lacks read:packages",
        )

    async def rate_limit(self) -> RateLimit:
        """The core budget (this call itself is free of the primary limit)."""
        reply = await self._request("GET", f"{self.api_url}/rate_limit")
        return _parse(reply, RateLimit.from_api, [reply.body])[0]

    # ---------------------------------------------------------------- plumbing

    async def _cancel(self, repo: str, run_id: int, action: str) -> CancelOutcome:
        url = self.repo_url(repo, f"actions/runs/{valid_id(run_id)}/{action}")
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
                return DispatchResult.from_run(run, self.repo_url(repo, f"actions/runs/{run.id}"))
            if self._clock() >= give_up:
                return None
            await self._sleep(self._dispatch_poll_interval)


def _validate_ref(ref: str) -> str:
    if (
        not isinstance(ref, str)
        or not _REF.fullmatch(ref)
        or ".." in ref
        or any(part in ("", ".") for part in ref.split("/"))
    ):
        raise ValidationError(f"invalid git ref: {ref!r:.60}")
    return ref


def _path(segment: str) -> str:
    """One URL path segment, percent-encoded ('/' included): it cannot add or climb levels."""
    return quote(segment, safe="")


def _refs(ref: str) -> str:
    """A validated ref (no empty, "." or ".." segment) with each segment percent-encoded."""
    return "/".join(_path(part) for part in ref.split("/"))


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
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []
