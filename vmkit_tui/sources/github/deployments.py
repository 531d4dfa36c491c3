"""GitHub Deployments: the record a team shares (deployments and their append-only statuses).

A deployment is created before anything is dispatched, so it doubles as a claim on the
environment; its statuses carry what happens next. Creating is not idempotent on GitHub, so a
lost answer is never blindly re-sent: the environment's deployments are looked up for the vmkit
deploy id in their payload first (the dispatch rule, applied here). Lists are conditional GETs
(an unchanged list is a free 304) and capped like every other body (`body.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

from vmkit_tui.domain.deployments import DESCRIPTION_LIMIT, PAYLOAD_KEY, RemoteStatus
from vmkit_tui.domain.models import ValidationError, validate_name, validate_sha
from vmkit_tui.sources.github.errors import ResponseLost
from vmkit_tui.sources.github.results import _field, _login, _optional, _time
from vmkit_tui.sources.github.session import ApiSession, _parse, valid_id
from vmkit_tui.sources.github.session import _endpoint as _method_path

__all__ = ["STATES", "Deployment", "DeploymentsApi"]

STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
_TASK_LIMIT = 100
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    sha: str
    ref: str
    task: str
    environment: str
    payload: Mapping[str, Any]  # {} when GitHub holds a string payload (not ours)
    description: str
    creator: str | None
    created_at: datetime
    transient_environment: bool
    production_environment: bool

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Deployment:
        payload = data.get("payload")
        return cls(
            id=_field(data, "id", int),
            sha=validate_sha(data.get("sha")),
            ref=_field(data, "ref", str),
            task=_optional(data, "task", str) or "deploy",
            environment=_field(data, "environment", str),
            payload=payload if isinstance(payload, dict) else {},
            description=_optional(data, "description", str) or "",
            creator=_login(data, "creator"),
            created_at=_time(data, "created_at"),
            transient_environment=bool(data.get("transient_environment", False)),
            production_environment=bool(data.get("production_environment", False)),
        )


def _status(data: Mapping[str, Any]) -> RemoteStatus:
    """A deployment status as GitHub lists it, in the domain's type (no copy to convert)."""
    state = _field(data, "state", str)
    if state not in STATES:
        raise ValueError(f"unknown deployment state {state!r:.30}")
    return RemoteStatus(
        id=_field(data, "id", int),
        state=state,
        description=_optional(data, "description", str) or "",
        log_url=_optional(data, "log_url", str) or _optional(data, "target_url", str),
        creator=_login(data, "creator"),
        created_at=_time(data, "created_at"),
    )


class DeploymentsApi(ApiSession):
    """The deployment endpoints; `GitHubClient` inherits them."""

    async def list_deployments(
        self, repo: str, environment: str | None, *, per_page: int = 30, max_pages: int = 1
    ) -> list[Deployment]:
        """The environment's deployments (None: the whole repository's), newest first
        (GitHub's order; ids increase)."""
        params: dict[str, str | int] = {"per_page": per_page}
        if environment is not None:
            params["environment"] = validate_name(environment, "environment")
        url = self.repo_url(repo, "deployments")
        return await self._collect(url, params, "", max_pages, Deployment.from_api)

    async def find_deployment(
        self, repo: str, environment: str, deploy_id: str, *, max_pages: int = 3
    ) -> Deployment | None:
        """Our deployment for `deploy_id` (its payload names it), among the newest ones."""
        found = await self.list_deployments(repo, environment, per_page=100, max_pages=max_pages)
        for deployment in found:
            if deployment.payload.get(PAYLOAD_KEY) == deploy_id:
                return deployment
        return None

    async def create_deployment(
        self,
        repo: str,
        *,
        sha: str,
        environment: str,
        task: str,
        payload: Mapping[str, Any],
        description: str,
        transient: bool = False,
        production: bool = False,
    ) -> Deployment:
        """Create it, or return the one an earlier attempt created (looked up by the vmkit
        deploy id in its payload before a second POST)."""
        deploy_id = payload.get(PAYLOAD_KEY)
        if not isinstance(deploy_id, str) or not deploy_id:
            raise ValidationError(f"a deployment payload names its {PAYLOAD_KEY}")
        if not isinstance(task, str) or not 0 < len(task) <= _TASK_LIMIT:
            raise ValidationError(f"invalid deployment task: {task!r:.40}")
        body = {
            "ref": validate_sha(sha),
            "task": task,
            "auto_merge": False,
            "required_contexts": [],
            "payload": dict(payload),
            "environment": validate_name(environment, "environment"),
            "description": description[:DESCRIPTION_LIMIT],
            "transient_environment": transient,
            "production_environment": production,
        }
        return await self._create_once(
            self.repo_url(repo, "deployments"),
            body,
            Deployment.from_api,
            lambda: self.find_deployment(repo, environment, deploy_id),
            f"creating the deployment for {deploy_id}",
        )

    async def list_statuses(
        self, repo: str, deployment_id: int, *, max_pages: int = 3
    ) -> list[RemoteStatus]:
        """The deployment's statuses, newest first (append-only on GitHub)."""
        url = self.repo_url(repo, f"deployments/{valid_id(deployment_id)}/statuses")
        params: dict[str, str | int] = {"per_page": 100}
        return await self._collect(url, params, "", max_pages, _status)

    async def create_status(
        self,
        repo: str,
        deployment_id: int,
        state: str,
        *,
        description: str,
        log_url: str | None = None,
        auto_inactive: bool = False,
    ) -> RemoteStatus:
        """Append a status; a lost answer is looked up (same state and description) before a
        second POST, so a retry never appends the same status twice."""
        if state not in STATES:
            raise ValidationError(f"invalid deployment state: {state!r:.30}")
        body: dict[str, Any] = {
            "state": state,
            "description": description[:DESCRIPTION_LIMIT],
            "auto_inactive": auto_inactive,
        }
        if log_url:
            body["log_url"] = log_url

        async def written() -> RemoteStatus | None:
            for status in await self.list_statuses(repo, deployment_id):
                if (status.state, status.description) == (state, body["description"]):
                    return status
            return None

        return await self._create_once(
            self.repo_url(repo, f"deployments/{valid_id(deployment_id)}/statuses"),
            body,
            _status,
            written,
            f"adding a status to deployment {deployment_id}",
        )

    async def _create_once(
        self,
        url: str,
        body: Mapping[str, Any],
        parser: Callable[[Any], T],
        written: Callable[[], Awaitable[T | None]],
        what: str,
    ) -> T:
        """POST `body` (not idempotent on GitHub): after a lost answer, `written` looks for
        what an earlier attempt made before the POST is sent again."""
        for _attempt in range(self._max_retries + 1):
            try:
                reply = await self._request("POST", url, json=body, accept=(201,), safe=False)
            except ResponseLost:
                found = await written()
                if found is not None:
                    return found
                continue
            return _parse(reply, parser, [reply.body])[0]
        raise ResponseLost(f"no answer {what}", endpoint=_method_path("POST", httpx.URL(url)))
