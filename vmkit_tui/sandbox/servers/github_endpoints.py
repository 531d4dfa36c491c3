"""The sandbox GitHub's REST endpoints: workflow runs, jobs and their logs (with the signed
blob URL a log redirects to), cancel, workflows and dispatch, compare, commits, GHCR package
versions, each answering from the world.

A handler gets a `Call` (the request, already authenticated, with its repo resolved) and
returns a `Reply`; `GitHubSandbox` (github_server.py) routes to them and adds what every reply
carries (rate headers, ETags, faults). `Endpoints` is the part of `GitHubSandbox` that holds
them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from vmkit_tui.sandbox.servers import github_payloads as payloads
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.github import Repo, Run, RunState
from vmkit_tui.sandbox.world.world import World

DEFAULT_API_VERSION = "2022-11-28"
CANCEL_DOCS = "https://docs.github.com/rest/actions/workflow-runs#cancel-a-workflow-run"
RERUN_DOCS = "https://docs.github.com/rest/actions/workflow-runs#re-run-a-workflow"
_STATUSES = ("completed", "in_progress", "queued", "requested", "waiting", "pending")


@dataclass(slots=True)
class Reply:
    """A response before headers common to every reply are added."""

    status: int
    body: Any = None  # JSON-serialisable; None: no body
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # a non-JSON body (logs, HTML error pages)
    content_type: str = "application/json; charset=utf-8"


@dataclass(slots=True)
class Call:
    """What a route handler gets: the parsed request and what it resolved to."""

    request: web.Request
    params: dict[str, str]
    repo: Repo | None
    token: str
    api_version: str
    query: Mapping[str, str]


async def json_object(call: Call) -> dict[str, Any] | Reply:
    """The request's body as a JSON object (none: `{}`); a 400 `Reply` as GitHub gives when it
    is not one."""
    try:
        body = json.loads(await call.request.read() or b"{}")
    except ValueError:
        return Reply(400, payloads.error("Problems parsing JSON", 400))
    if not isinstance(body, dict):
        return Reply(400, payloads.error("Problems parsing JSON", 400))
    return body


class Endpoints:
    """Part of `GitHubSandbox`: the route handlers and what they share."""

    world: World
    html_url: str
    dispatch_run_details: bool
    log_url_ttl: float
    actor: str
    _base: str
    _secret: bytes
    _blobs: dict[str, int]  # blob key → job id
    _run_cache: dict[int, tuple[RunState, dict[str, Any]]]

    def _paginate(
        self, call: Call, items: list[Any], link_path: str
    ) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = min(100, max(1, int(call.query.get("per_page", "30"))))
            page = max(1, int(call.query.get("page", "1")))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        params = dict(call.query)
        params["per_page"] = str(per_page)

        def url(number: int) -> str:
            return f"{self._base}{link_path}?{urlencode(params | {'page': str(number)})}"

        if page > 1:
            links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
        if page < last:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        return chunk, ({"link": ", ".join(links)} if links else {})

    def _urls(self) -> payloads.Urls:
        return payloads.Urls(self._base, self.html_url)

    def _run_of(self, call: Call) -> Run | None:
        run = self.world.run(int(call.params["run_id"]))
        return run if run is not None and run.repo is call.repo else None

    async def _list_runs(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        link_path = f"/repositories/{repo.id}/actions/runs"
        runs = self.world.runs(repo)
        if "workflow" in call.params:
            flow = self.world.workflow(repo, call.params["workflow"])
            if flow is None:
                return Reply(404, payloads.error("Not Found", 404))
            runs = [run for run in runs if run.workflow.id == flow.id]
            link_path = f"/repositories/{repo.id}/actions/workflows/{call.params['workflow']}/runs"
        try:
            runs = self._filter_runs(runs, call.query)
        except ValueError as exc:
            return Reply(422, payloads.error(f"Validation Failed: {exc}", 422))
        chunk, headers = self._paginate(call, runs, link_path)
        body = {"total_count": len(runs), "workflow_runs": [self._run_body(run) for run in chunk]}
        return Reply(200, body, headers)

    def _filter_runs(self, runs: list[Run], query: Mapping[str, str]) -> list[Run]:
        if query.get("branch"):
            runs = [run for run in runs if run.head_branch == query["branch"]]
        if query.get("event"):
            runs = [run for run in runs if run.event == query["event"]]
        if query.get("actor"):
            runs = [run for run in runs if run.actor == query["actor"]]
        if query.get("head_sha"):  # exact match: a short SHA finds nothing, like GitHub
            runs = [run for run in runs if run.head_sha == query["head_sha"]]
        if query.get("check_suite_id"):
            runs = [run for run in runs if str(run.check_suite_id) == query["check_suite_id"]]
        if query.get("status"):
            wanted = query["status"]
            field_index = 0 if wanted in _STATUSES else 1
            runs = [
                run
                for run in runs
                if (self.world.run_status(run).status, self.world.run_status(run).conclusion)[
                    field_index
                ]
                == wanted
            ]
        if query.get("created"):
            low, high = _created_range(query["created"])
            runs = [
                run
                for run in runs
                if (low is None or run.created_at >= low)
                and (high is None or run.created_at < high)
            ]
        return runs

    def _run_body(self, run: Run) -> dict[str, Any]:
        """A run's JSON, rendered again only when its state has changed (polling is cheap)."""
        state = self.world.run_status(run)
        cached = self._run_cache.get(run.id)
        if cached is None or cached[0] != state:
            head = self.world.commit(run.repo, run.head_sha)
            cached = (state, payloads.workflow_run(self._urls(), run, state, head))
            self._run_cache[run.id] = cached
        return cached[1]

    def _attempt_of(self, call: Call, run: Run) -> int | None:
        """The attempt a path names (None: the current one); `WorldError` for one not made."""
        if "attempt" not in call.params:
            return None
        attempt = int(call.params["attempt"])
        if not 1 <= attempt <= run.run_attempt:
            raise WorldError("Not Found")
        return None if attempt == run.run_attempt else attempt

    async def _get_run(self, call: Call) -> Reply:
        run = self._run_of(call)
        try:
            attempt = None if run is None else self._attempt_of(call, run)
        except WorldError:
            run = None
        if run is None:
            return Reply(404, payloads.error("Not Found", 404))
        if attempt is None:
            return Reply(200, self._run_body(run))
        state = self.world.run_status(run, attempt)
        head = self.world.commit(run.repo, run.head_sha)
        return Reply(200, payloads.workflow_run(self._urls(), run, state, head, attempt))

    async def _list_jobs(self, call: Call) -> Reply:
        run = self._run_of(call)
        try:
            jobs = [] if run is None else self.world.jobs(run, self._attempt_of(call, run))
        except WorldError:
            run = None
        if run is None:
            return Reply(404, payloads.error("Not Found", 404))
        assert call.repo is not None
        suffix = f"/attempts/{call.params['attempt']}" if "attempt" in call.params else ""
        chunk, headers = self._paginate(
            call, jobs, f"/repositories/{call.repo.id}/actions/runs/{run.id}{suffix}/jobs"
        )
        urls = self._urls()
        return Reply(
            200,
            {"total_count": len(jobs), "jobs": [payloads.job(urls, run, view) for view in chunk]},
            headers,
        )

    async def _get_job(self, call: Call) -> Reply:
        found = self.world.job(int(call.params["job_id"]))
        if found is None or found[0].repo is not call.repo:
            return Reply(404, payloads.error("Not Found", 404))
        return Reply(200, payloads.job(self._urls(), found[0], found[1]))

    async def _job_logs(self, call: Call) -> Reply:
        job_id = int(call.params["job_id"])
        found = self.world.job(job_id)
        if found is None or found[0].repo is not call.repo or self.world.job_log(job_id) is None:
            return Reply(404, payloads.error("Not Found", 404))  # unknown, or still running
        key = str(
            uuid.UUID(bytes=hashlib.sha256(f"{job_id}".encode() + self._secret).digest()[:16])
        )
        self._blobs[key] = job_id
        expires = int((self.world.clock.now() + timedelta(seconds=self.log_url_ttl)).timestamp())
        signature = self._sign(key, expires)
        location = (
            f"{self._base}/_blob/actions-results/{key}/logs/job/job-logs.txt"
            f"?rsct=text%2Fplain&se={expires}&sp=r&sv=2025-01-05&sr=b&sig={signature}"
        )
        return Reply(302, None, {"location": location})

    def _sign(self, key: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{key}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _blob(self, request: web.Request) -> Reply:
        """The log host: the signature in the URL is the credential (an Authorization header is
        ignored, as GitHub's blob storage does, but recorded)."""
        match = re.fullmatch(
            r"/_blob/actions-results/([0-9a-f-]+)/logs/job/job-logs\.txt", request.rel_url.raw_path
        )
        query = request.rel_url.query
        refused = Reply(
            403,
            text=(
                '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
                "<Message>Server failed to authenticate the request. Make sure the value of "
                "Authorization header is formed correctly including the signature.</Message></Error>"
            ),
            content_type="application/xml; charset=utf-8",
        )
        if match is None or match.group(1) not in self._blobs:
            return Reply(404, text="BlobNotFound", content_type="text/plain; charset=utf-8")
        try:
            expires = int(query.get("se", ""))
        except ValueError:
            return refused
        if not hmac.compare_digest(self._sign(match.group(1), expires), query.get("sig", "")):
            return refused
        if self.world.clock.now().timestamp() > expires:
            return refused
        text = self.world.job_log(self._blobs[match.group(1)]) or ""
        return Reply(200, text=text, content_type="text/plain; charset=utf-8")

    async def _cancel(self, call: Call, *, force: bool = False) -> Reply:
        run = self._run_of(call)
        if run is None:
            return Reply(404, payloads.error("Not Found", 404))
        if not self.world.cancel(run, force=force):
            return Reply(
                409,
                payloads.error("Cannot cancel a workflow run that is completed.", 409, CANCEL_DOCS),
            )
        return Reply(202, {})

    async def _force_cancel(self, call: Call) -> Reply:
        return await self._cancel(call, force=True)

    async def _rerun(self, call: Call) -> Reply:
        """Re-run all of a completed run's jobs: GitHub answers 201 with an empty object."""
        run = self._run_of(call)
        if run is None:
            return Reply(404, payloads.error("Not Found", 404))
        try:
            self.world.rerun(run, actor=self.actor)  # the token's user re-ran it
        except WorldError as exc:
            return Reply(403, payloads.error(str(exc), 403, RERUN_DOCS))
        return Reply(201, {})

    async def _list_workflows(self, call: Call) -> Reply:
        assert call.repo is not None
        flows = self.world.workflows(call.repo)
        urls = self._urls()
        return Reply(
            200,
            {
                "total_count": len(flows),
                "workflows": [payloads.workflow(urls, call.repo, f) for f in flows],
            },
        )

    async def _get_workflow(self, call: Call) -> Reply:
        assert call.repo is not None
        flow = self.world.workflow(call.repo, call.params["workflow"])
        if flow is None:
            return Reply(404, payloads.error("Not Found", 404))
        return Reply(200, payloads.workflow(self._urls(), call.repo, flow))

    async def _dispatch(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        flow = self.world.workflow(repo, call.params["workflow"])
        if flow is None:
            return Reply(404, payloads.error("Not Found", 404))
        body = await json_object(call)
        if isinstance(body, Reply):
            return body
        if "return_run_details" in body and not self.dispatch_run_details:
            return Reply(422, payloads.error('"return_run_details" is not a permitted key.', 422))
        if not isinstance(body.get("ref"), str):
            return Reply(422, payloads.error('Invalid request.\n\n"ref" wasn\'t supplied.', 422))
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            return Reply(
                422,
                payloads.error(
                    "Invalid request.\n\nFor 'properties/inputs', it is not an object.", 422
                ),
            )
        try:
            run = self.world.dispatch(repo, flow, body["ref"], inputs, actor=self.actor)
        except WorldError as exc:
            status = 404 if str(exc) == "Not Found" else 422
            return Reply(status, payloads.error(str(exc), status))
        if body.get("return_run_details") is True or call.api_version != DEFAULT_API_VERSION:
            return Reply(
                200,
                {
                    "workflow_run_id": run.id,
                    "run_url": f"{self._urls().repo(repo)}/actions/runs/{run.id}",
                    "html_url": f"{self.html_url}/{repo.full_name}/actions/runs/{run.id}",
                },
            )
        return Reply(204)

    async def _compare(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        basehead = call.params["basehead"]
        base, dots, head = basehead.partition("...")
        found = self.world.comparison(repo, base, head) if dots else None
        if found is None:
            return Reply(404, payloads.error("Not Found", 404))
        body = payloads.comparison(self._urls(), repo, found, basehead)
        headers: dict[str, str] = {}
        if "page" in call.query or "per_page" in call.query:
            link = f"/repositories/{repo.id}/compare/{basehead}"
            body["commits"], headers = self._paginate(call, body["commits"], link)
            if call.query.get("page", "1") != "1":
                body["files"] = []  # GitHub sends files on the first page only
        return Reply(200, body, headers)

    async def _get_commit(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        ref = call.params["ref"]
        item = self.world.commit(repo, ref)
        if item is None:
            return Reply(422, payloads.error(f"No commit found for SHA: {ref}", 422))
        if item.parent is None:
            files = [(name, "added") for name in item.files]
        else:
            found = self.world.comparison(repo, item.parent, item.sha)
            files = [(change.filename, change.status) for change in (found.files if found else ())]
        return Reply(200, payloads.commit(self._urls(), repo, item, files=files))

    async def _package_versions(self, call: Call) -> Reply:
        owner, package = call.params["owner"], call.params["package"]
        repo = next(
            (
                r
                for r in self.world.repos.values()
                if r.owner.lower() == owner.lower() and r.package_name == package
            ),
            None,
        )
        if repo is None:
            return Reply(404, payloads.error("Package not found.", 404))
        versions = self.world.package_versions(repo)
        chunk, headers = self._paginate(call, versions, call.request.rel_url.raw_path)
        urls = self._urls()
        return Reply(
            200, [payloads.package_version(urls, repo, version) for version in chunk], headers
        )


def _created_range(spec: str) -> tuple[datetime | None, datetime | None]:
    """GitHub's `created` search syntax (`>=2026-05-01`, `A..B`, `2026-05-01`, date-times)
    → [low, high) bounds; ValueError when it cannot be read."""

    def bounds(text: str) -> tuple[datetime, datetime]:
        """The span a value names: a whole day for a date, one instant for a date-time."""
        if len(text) == 10:
            day = datetime.fromisoformat(text + "T00:00:00+00:00")
            return day, day + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"created: no time zone in {text!r}")
        return moment, moment + timedelta(microseconds=1)

    if ".." in spec:
        first, _, second = spec.partition("..")
        low = None if first in ("", "*") else bounds(first)[0]
        high = None if second in ("", "*") else bounds(second)[1]
        return low, high
    operator = next((op for op in (">=", "<=", ">", "<") if spec.startswith(op)), "")
    start, after = bounds(spec[len(operator) :])
    return {
        ">=": (start, None),
        ">": (after, None),
        "<=": (None, after),
        "<": (None, start),
        "": (start, after),
    }[operator]


__all__ = ["DEFAULT_API_VERSION", "Call", "Endpoints", "Reply"]
