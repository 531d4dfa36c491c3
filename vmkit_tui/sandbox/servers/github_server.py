"""The sandbox GitHub: a real HTTP server (aiohttp.web) serving GitHub's REST API from the world.

    sandbox = GitHubSandbox(world, tokens={"t0k3n": {"repo", "workflow", "read:packages"}})
    api_url = await sandbox.start()          # http://127.0.0.1:PORT, used like GHE's /api/v3
    ...
    await sandbox.stop()

Serves, under `/repos/{owner}/{repo}/…` and the `/repositories/{id}/…` alias that GitHub's
pagination links use: workflow runs (list, per workflow, get, attempt 1), jobs, job logs (302 to
a short-lived signed URL under `/_blob/…`; 404 while the job runs), cancel / force-cancel (202,
409 once completed), workflow dispatch (204, or 200 with run details), workflows, compare,
commits, deployments with their statuses and environments (github_deployments.py); plus GHCR
package versions (`/orgs|users/{owner}/packages/container/{name}/versions`,
the name URL-encoded) and `/rate_limit`. With `html_url` set to `web_url` (as the demo does), the
web links (a run's `html_url`, what `o` opens) lead to small pages under `/_web/…` that say they
are the sandbox, never to github.com.

Behaves like GitHub where clients trip: 401 without a known token, 404 for repos the token's
scopes cannot see, 403 on packages without `read:packages`, strong ETags with bodiless 304s that
cost no rate budget, `x-ratelimit-*` headers and 403/429 on exhaustion, `Link` headers for
pagination. Faults (`sandbox.faults`) and the request record (`sandbox.requests`) are for tests.
Every time comes from the world's clock.

This module is the server around the endpoints: the route table, authentication, API versions,
the rate budget (and `/rate_limit`), faults, ETags and rendering. The endpoints themselves are
in github_endpoints.py.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from vmkit_tui.sandbox.servers import github_payloads as payloads
from vmkit_tui.sandbox.servers.faults import Fault, FaultKind, FaultPlan, RecordedRequest
from vmkit_tui.sandbox.servers.github_deployments import (
    READONLY_GRANTS,
    SANDBOX_READONLY_TOKEN,
    DeploymentEndpoints,
)
from vmkit_tui.sandbox.servers.github_endpoints import DEFAULT_API_VERSION, Call, Reply
from vmkit_tui.sandbox.world.github import Repo, RunState
from vmkit_tui.sandbox.world.world import World

SANDBOX_TOKEN = "gho_vmkitSandboxDemoToken0000000000000"
FULL_SCOPES = frozenset({"repo", "workflow", "read:packages"})
API_VERSIONS = ("2022-11-28", "2026-03-10")
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {rid}."
)
_REPO = r"(?:/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)|/repositories/(?P<repo_id>\d+))"


@dataclass(slots=True)
class _Budget:
    used: int = 0
    reset: datetime | None = None


Handler = Callable[[Call], Awaitable[Reply]]


class GitHubSandbox(DeploymentEndpoints):
    """GitHub's REST API over real HTTP, backed by a `World`."""

    def __init__(
        self,
        world: World,
        *,
        tokens: Mapping[str, set[str] | frozenset[str]] | None = None,
        rate_limit: int = 5000,
        rate_limit_status: int = 403,
        html_url: str = "https://github.com",
        dispatch_run_details: bool = True,
        log_url_ttl: float = 60.0,
        actor: str = "maria-chen",
    ) -> None:
        self.world = world
        self.tokens = {
            token: frozenset(scopes)
            for token, scopes in (
                tokens or {SANDBOX_TOKEN: FULL_SCOPES, SANDBOX_READONLY_TOKEN: READONLY_GRANTS}
            ).items()
        }
        self.rate_limit = rate_limit
        self.rate_limit_status = rate_limit_status
        self.html_url = html_url.rstrip("/")
        self.dispatch_run_details = dispatch_run_details  # False: GHES ≤ 3.20 rejects the key
        self.log_url_ttl = log_url_ttl
        self.actor = actor
        self.faults = FaultPlan()
        self.requests: list[RecordedRequest] = []
        self._budgets: dict[str, _Budget] = {}
        self._secret = secrets.token_bytes(32)
        self._blobs: dict[str, int] = {}  # blob key → job id
        self._run_cache: dict[int, tuple[RunState, dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self._base = ""
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        for method, pattern, handler, scope in (
            ("GET", r"/rate_limit", self._rate_limit, ""),
            ("GET", _REPO + r"/actions/runs", self._list_runs, "repo"),
            (
                "GET",
                _REPO + r"/actions/workflows/(?P<workflow>[^/]+)/runs",
                self._list_runs,
                "repo",
            ),
            ("GET", _REPO + r"/actions/runs/(?P<run_id>\d+)", self._get_run, "repo"),
            (
                "GET",
                _REPO + r"/actions/runs/(?P<run_id>\d+)/attempts/(?P<attempt>\d+)",
                self._get_run,
                "repo",
            ),
            ("GET", _REPO + r"/actions/runs/(?P<run_id>\d+)/jobs", self._list_jobs, "repo"),
            (
                "GET",
                _REPO + r"/actions/runs/(?P<run_id>\d+)/attempts/(?P<attempt>\d+)/jobs",
                self._list_jobs,
                "repo",
            ),
            ("POST", _REPO + r"/actions/runs/(?P<run_id>\d+)/rerun", self._rerun, "repo"),
            ("GET", _REPO + r"/actions/jobs/(?P<job_id>\d+)", self._get_job, "repo"),
            ("GET", _REPO + r"/actions/jobs/(?P<job_id>\d+)/logs", self._job_logs, "repo"),
            ("POST", _REPO + r"/actions/runs/(?P<run_id>\d+)/cancel", self._cancel, "repo"),
            (
                "POST",
                _REPO + r"/actions/runs/(?P<run_id>\d+)/force-cancel",
                self._force_cancel,
                "repo",
            ),
            ("GET", _REPO + r"/actions/workflows", self._list_workflows, "repo"),
            ("GET", _REPO + r"/actions/workflows/(?P<workflow>[^/]+)", self._get_workflow, "repo"),
            (
                "POST",
                _REPO + r"/actions/workflows/(?P<workflow>[^/]+)/dispatches",
                self._dispatch,
                "repo",
            ),
            ("GET", _REPO + r"/compare/(?P<basehead>.+)", self._compare, "repo"),
            ("GET", _REPO + r"/commits/(?P<ref>.+)", self._get_commit, "repo"),
            (
                "GET",
                r"/(?:orgs|users)/(?P<owner>[^/]+)/packages/container/(?P<package>[^/]+)/versions",
                self._package_versions,
                "read:packages",
            ),
            *self._deployment_routes(_REPO),
        ):
            self._routes.append((method, re.compile(pattern), handler, scope))

    # ------------------------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self._base:
            raise RuntimeError("the sandbox GitHub server is not started")
        return self._base

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on `host:port` (0: any free port) in the running loop; returns the base URL."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        self._base = f"http://{host}:{bound[1]}"
        return self._base

    @property
    def web_url(self) -> str:
        """The sandbox's own web base (for `html_url`): pages that say they are the sandbox."""
        return f"{self.base_url}/_web"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------------------------
    # Rate budget
    # ------------------------------------------------------------------------------------

    def _budget(self, token: str) -> _Budget:
        now = self.world.clock.now()
        budget = self._budgets.setdefault(token, _Budget())
        if budget.reset is None or now >= budget.reset:
            budget.used, budget.reset = 0, now + timedelta(hours=1)
        return budget

    def rate_remaining(self, token: str = SANDBOX_TOKEN) -> int:
        return max(0, self.rate_limit - self._budget(token).used)

    def _rate_headers(self, token: str) -> dict[str, str]:
        budget = self._budget(token)
        assert budget.reset is not None
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.rate_limit - budget.used)),
            "x-ratelimit-used": str(budget.used),
            "x-ratelimit-reset": str(math.ceil(budget.reset.timestamp())),
            "x-ratelimit-resource": "core",
        }

    async def _rate_limit(self, call: Call) -> Reply:
        budget = self._budget(call.token)
        assert budget.reset is not None
        body = payloads.rate_limit(
            self.rate_limit,
            budget.used,
            math.ceil(budget.reset.timestamp()),
            with_rate=call.api_version == DEFAULT_API_VERSION,
        )
        return Reply(200, body)

    # ------------------------------------------------------------------------------------
    # The one handler: record, fault, authenticate, limit, route, cache
    # ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        fault = self.faults.take(request.method, path)
        kind = fault.kind if fault is not None else None
        reply: Reply | None = None
        counted = False
        if kind is FaultKind.SLOW:
            assert fault is not None
            await self.world.clock.sleep(fault.delay)
        if fault is not None and kind in (
            FaultKind.SERVER_ERROR,
            FaultKind.SECONDARY_RATE_LIMIT,
            FaultKind.TOO_MANY_REQUESTS,
        ):
            reply = self._fault_reply(request, fault)
        elif kind is not FaultKind.DROP_CONNECTION:
            if path.startswith("/_blob/"):
                reply = self._blob(request)
            elif path.startswith("/_web/"):
                reply = _web_page(path)
            else:
                reply, counted = await self._api(request, path)
        dropped = kind in (FaultKind.DROP_CONNECTION, FaultKind.DISPATCH_LOST)
        response = (
            self._render(reply, fault) if reply is not None and not dropped else web.Response()
        )
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=path,
                query=request.rel_url.raw_query_string,
                headers={
                    k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"
                },
                authorized="Authorization" in request.headers,
                status=None if dropped else response.status,
                at=self.world.clock.now(),
                fault=kind,
                counted=counted,
            )
        )
        if dropped and request.transport is not None:
            # The socket closes with no answer (for a lost dispatch: after the run exists).
            request.transport.abort()
        return response

    def _fault_reply(self, request: web.Request, fault: Fault) -> Reply:
        if fault.kind is FaultKind.SERVER_ERROR:
            if fault.status == 500:
                return Reply(500, payloads.error("Server Error", 500))
            page = f"<html><body><h1>{fault.status} Server Error</h1><p>Unicorn!</p></body></html>"
            return Reply(fault.status, text=page, content_type="text/html; charset=utf-8")
        rid = f"{secrets.token_hex(2).upper()}:{secrets.token_hex(3).upper()}"
        reply = Reply(
            fault.status,
            {
                "message": SECONDARY_MESSAGE.format(rid=rid),
                "documentation_url": RATE_DOCS + "#about-secondary-rate-limits",
                "status": str(fault.status),
            },
        )
        if fault.retry_after is not None and fault.rate_headers:
            reply.headers["retry-after"] = str(fault.retry_after)
        token = self._token(request)
        if fault.rate_headers and token is not None and token in self.tokens:
            reply.headers.update(self._rate_headers(token))
        return reply

    @staticmethod
    def _token(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
        return None

    async def _api(self, request: web.Request, path: str) -> tuple[Reply, bool]:
        """Authenticate, check the version and the budget, route; returns (reply, counted)."""
        token = self._token(request)
        if token is None:
            return Reply(401, payloads.error("Requires authentication", 401)), False
        scopes = self.tokens.get(token)
        if scopes is None:
            return Reply(401, payloads.error("Bad credentials", 401)), False
        version = request.headers.get("X-GitHub-Api-Version", DEFAULT_API_VERSION)
        common = {
            "x-oauth-scopes": ", ".join(sorted(scopes)),
            "x-github-api-version-selected": version,
        }
        if version not in API_VERSIONS:
            reply = Reply(400, payloads.error(f"Invalid API version provided: {version}", 400))
            reply.headers.update(common)
            return reply, False
        budget = self._budget(token)
        free = path == "/rate_limit"
        if not free and budget.used >= self.rate_limit:
            message = "API rate limit exceeded for user ID 1."
            reply = Reply(
                self.rate_limit_status, payloads.error(message, self.rate_limit_status, RATE_DOCS)
            )
            reply.headers.update(common | self._rate_headers(token))
            return reply, False
        reply = await self._route(request, path, token, scopes, version)
        not_modified = self._conditional(request, reply)
        counted = not free and not not_modified
        if counted:
            budget.used += 1
        reply.headers.update(common | self._rate_headers(token))
        return reply, counted

    async def _route(
        self, request: web.Request, path: str, token: str, scopes: frozenset[str], version: str
    ) -> Reply:
        for method, pattern, handler, scope in self._routes:
            match = pattern.fullmatch(path)
            if match is None or method != request.method:
                continue
            params = {
                key: unquote(value) for key, value in match.groupdict().items() if value is not None
            }
            if scope == "read:packages":
                if token.startswith(("github_pat_", "ghs_")):
                    kind = (
                        "personal access token"
                        if token.startswith("github_pat_")
                        else "integration"
                    )
                    return Reply(403, payloads.error(f"Resource not accessible by {kind}", 403))
                if scope not in scopes:
                    reply = Reply(
                        403,
                        payloads.error(
                            "You need at least read:packages scope to get a package's versions.",
                            403,
                        ),
                    )
                    reply.headers["x-accepted-oauth-scopes"] = "read:packages"
                    return reply
            repo = None
            if ("owner" in params and "name" in params) or "repo_id" in params:
                repo = self._find_repo(params)
                if repo is None or (scope and scope not in scopes):
                    return Reply(404, payloads.error("Not Found", 404))
            call = Call(request, params, repo, token, version, request.query)
            reply = await handler(call)
            if scope:
                reply.headers.setdefault("x-accepted-oauth-scopes", scope)
            return reply
        return Reply(404, payloads.error("Not Found", 404))

    def _find_repo(self, params: Mapping[str, str]) -> Repo | None:
        if "repo_id" in params:
            return self.world.repo_by_id(int(params["repo_id"]))
        wanted = f"{params['owner']}/{params['name']}".lower()
        return next(
            (repo for repo in self.world.repos.values() if repo.full_name.lower() == wanted), None
        )

    @staticmethod
    def _etag(body: bytes) -> str:
        return '"' + hashlib.sha256(body).hexdigest() + '"'

    def _conditional(self, request: web.Request, reply: Reply) -> bool:
        """Add a strong ETag to a 200 JSON GET; turn it into a bodiless 304 when the client
        already has it. Returns whether it became a 304."""
        if request.method != "GET" or reply.status != 200 or reply.body is None:
            return False
        etag = self._etag(_dump(reply.body))
        reply.headers["etag"] = etag
        reply.headers["cache-control"] = "private, max-age=60, s-maxage=60"
        reply.headers["vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding"
        wanted = request.headers.get("If-None-Match", "")
        tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",") if tag.strip()}
        if etag in tags or "*" in tags:
            reply.status, reply.body = 304, None
            return True
        return False

    def _render(self, reply: Reply, fault: Fault | None) -> web.Response:
        headers = {
            "x-github-request-id": f"{secrets.token_hex(4).upper()}:{secrets.token_hex(6).upper()}"
        }
        headers.update(reply.headers)
        if reply.text is not None:
            body: bytes | None = reply.text.encode()
        elif reply.body is not None:
            body = _dump(reply.body)
        else:
            body = None
        if fault is not None and fault.kind is FaultKind.MALFORMED_JSON:
            body = (body or b'{"message":')[: max(1, len(body or b"") // 2)]
            reply.status, reply.content_type = 200, "application/json; charset=utf-8"
        if fault is not None and not fault.rate_headers:
            headers = {k: v for k, v in headers.items() if not k.startswith("x-ratelimit-")}
        response = web.Response(status=reply.status, body=body, headers=headers)
        if body is not None:
            response.content_type = reply.content_type.split(";")[0]
            response.charset = "utf-8"
        return response


def _dump(body: Any) -> bytes:
    return orjson.dumps(body)


__all__ = ["FULL_SCOPES", "SANDBOX_READONLY_TOKEN", "SANDBOX_TOKEN", "GitHubSandbox"]


_RUN_PAGE = re.compile(r"/_web/[^/]+/[^/]+/actions/runs/(\d+)(?:/.*)?")


def _web_page(path: str) -> Reply:
    """What a browser sees at a sandbox web link: which run it is, and that it is simulated."""
    run = _RUN_PAGE.fullmatch(path)
    title = f"vmkit-tui sandbox run {run.group(1)}" if run else "vmkit-tui sandbox"
    page = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{html.escape(path.removeprefix('/_web'))}</p><p>This is the simulated GitHub of "
        "<code>vmkit-tui demo</code> on 127.0.0.1, not github.com: the run's jobs and logs "
        "are in the dashboard.</p></body></html>"
    )
    return Reply(200, text=page, content_type="text/html; charset=utf-8")
