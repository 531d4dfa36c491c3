"""The sandbox GitHub's deployments, deployment statuses and environments endpoints, with their
JSON shapes (GitHub's published schemas; bare arrays for the two lists, as GitHub sends them).

Who may do what, as GitHub decides it:
- classic and OAuth tokens: `repo` or `repo_deployment` reads and writes deployments; without
  either the private repo's deployments are invisible (404);
- fine-grained tokens (`github_pat_`) and installation tokens (`ghs_`): the grants
  `deployments:read` / `deployments:write` decide; a token that may read but not write (or may
  see the repo but not its deployments) gets 403 "Resource not accessible by …" with the
  permission it lacks in `x-accepted-github-permissions`.
`SANDBOX_READONLY_TOKEN` is such a token: it reads runs, jobs and deployments and dispatches,
but creates no deployment or status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from vmkit_tui.sandbox.servers import github_payloads as payloads
from vmkit_tui.sandbox.servers.github_endpoints import Call, Endpoints, Reply, json_object
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.deployments import (
    ACTIONS_BOT,
    STATES,
    Deployment,
    DeploymentStatus,
    GitHubEnvironment,
)
from vmkit_tui.sandbox.world.github import Repo

SANDBOX_READONLY_TOKEN = "github_pat_11VMKITSANDBOX0readOnly_deployments000000000"
READONLY_GRANTS = frozenset({"repo", "workflow", "deployments:read"})
DOCS = "https://docs.github.com/rest/deployments"
_CREATE_DOCS = f"{DOCS}/deployments#create-a-deployment"
_STATUS_DOCS = f"{DOCS}/statuses#create-a-deployment-status"
_CLASSIC = "repo, repo_deployment"
Json = dict[str, Any]
Handler = Callable[[Call], Awaitable[Reply]]


# ----------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------


def _creator(urls: payloads.Urls, login: str) -> Json:
    return payloads.user(urls, login, "Bot" if login == ACTIONS_BOT else "User")


def deployment_body(urls: payloads.Urls, item: Deployment) -> Json:
    url = f"{urls.repo(item.repo)}/deployments/{item.id}"
    return {
        "url": url,
        "id": item.id,
        "node_id": item.node_id,
        "task": item.task,
        "original_environment": item.original_environment,
        "environment": item.environment,
        "description": item.description,
        "created_at": payloads.iso(item.created_at),
        "updated_at": payloads.iso(item.updated_at),
        "statuses_url": f"{url}/statuses",
        "repository_url": urls.repo(item.repo),
        "creator": _creator(urls, item.creator),
        "sha": item.sha,
        "ref": item.ref,
        "payload": item.payload,
        "transient_environment": item.transient_environment,
        "production_environment": item.production_environment,
        "performed_via_github_app": None,
    }


def status_body(urls: payloads.Urls, item: Deployment, status: DeploymentStatus) -> Json:
    deployment_url = f"{urls.repo(item.repo)}/deployments/{item.id}"
    log_url = status.log_url
    if status.run_id is not None:
        log_url = f"{urls.html}/{item.repo.full_name}/actions/runs/{status.run_id}"
    return {
        "url": f"{deployment_url}/statuses/{status.id}",
        "id": status.id,
        "node_id": status.node_id,
        "state": status.state,
        "creator": _creator(urls, status.creator),
        "description": status.description,
        "environment": status.environment,
        "target_url": log_url,
        "created_at": payloads.iso(status.created_at),
        "updated_at": payloads.iso(status.created_at),
        "deployment_url": deployment_url,
        "repository_url": urls.repo(item.repo),
        "environment_url": status.environment_url,
        "log_url": log_url,
        "performed_via_github_app": None,
    }


def environment_body(urls: payloads.Urls, repo: Repo, env: GitHubEnvironment) -> Json:
    return {
        "id": env.id,
        "node_id": env.node_id,
        "name": env.name,
        "url": f"{urls.repo(repo)}/environments/{env.name}",
        "html_url": (
            f"{urls.html}/{repo.full_name}/deployments/activity_log?environments_filter={env.name}"
        ),
        "created_at": payloads.iso(env.created_at),
        "updated_at": payloads.iso(env.created_at),
        "protection_rules": [],
        "deployment_branch_policy": None,
    }


# ----------------------------------------------------------------------------------------
# Request bodies
# ----------------------------------------------------------------------------------------

_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda value: isinstance(value, str), "a string"),
    "boolean": (lambda value: isinstance(value, bool), "a boolean"),
    "strings": (
        lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
        "an array",
    ),
    "payload": (lambda value: isinstance(value, dict | str), "an object or string"),
    "nullable string": (lambda value: value is None or isinstance(value, str), "a string"),
}
_DEPLOYMENT_FIELDS = {
    "ref": "string",
    "task": "string",
    "auto_merge": "boolean",
    "required_contexts": "strings",
    "payload": "payload",
    "environment": "string",
    "description": "nullable string",
    "transient_environment": "boolean",
    "production_environment": "boolean",
}
_STATUS_FIELDS = {
    "state": "string",
    "target_url": "string",
    "log_url": "string",
    "description": "string",
    "environment": "string",
    "environment_url": "string",
    "auto_inactive": "boolean",
}


async def _json_body(call: Call, fields: Mapping[str, str], required: str) -> Json | Reply:
    """The request's JSON object, checked as GitHub checks it; a `Reply` when it is refused."""
    body = await json_object(call)
    if isinstance(body, Reply):
        return body
    if required not in body:
        return _invalid(f'"{required}" wasn\'t supplied.')
    for name, value in body.items():
        kind = fields.get(name)
        if kind is not None and not _KINDS[kind][0](value):
            shown = json.dumps(value)
            return _invalid(f"For 'properties/{name}', {shown} is not {_KINDS[kind][1]}.")
    return body


def _invalid(detail: str) -> Reply:
    return Reply(422, payloads.error(f"Invalid request.\n\n{detail}", 422))


# ----------------------------------------------------------------------------------------
# Endpoints
# ----------------------------------------------------------------------------------------


class DeploymentEndpoints(Endpoints):
    """Part of `GitHubSandbox`: deployments, their statuses, and environments."""

    tokens: dict[str, frozenset[str]]

    def _deployment_routes(self, repo: str) -> list[tuple[str, str, Any, str]]:
        """The route table entries (method, pattern, handler, scope) for the server."""
        deployment = repo + r"/deployments/(?P<deployment_id>\d+)"
        reads, writes = self._permitted(write=False), self._permitted(write=True)
        return [
            ("GET", repo + r"/deployments", reads(self._list_deployments), ""),
            ("POST", repo + r"/deployments", writes(self._create_deployment), ""),
            ("GET", deployment, reads(self._get_deployment), ""),
            ("GET", deployment + r"/statuses", reads(self._list_statuses), ""),
            ("POST", deployment + r"/statuses", writes(self._create_status), ""),
            ("GET", deployment + r"/statuses/(?P<status_id>\d+)", reads(self._get_status), ""),
            ("GET", repo + r"/environments", self._list_environments, "repo"),
            ("GET", repo + r"/environments/(?P<environment>[^/]+)", self._get_environment, "repo"),
        ]

    def _permitted(self, *, write: bool) -> Callable[[Handler], Handler]:
        """Wraps a handler so that it runs only when `_refused` lets the token through."""

        def wrap(handler: Handler) -> Handler:
            async def checked(call: Call) -> Reply:
                refused = self._refused(call, write=write)
                return refused if refused is not None else await handler(call)

            return checked

        return wrap

    def _refused(self, call: Call, *, write: bool) -> Reply | None:
        """GitHub's answer when the token may not read (or write) deployments; None: it may."""
        grants = self.tokens.get(call.token, frozenset())
        if not call.token.startswith(("github_pat_", "ghs_")):
            if grants & {"repo", "repo_deployment"}:
                return None
            reply = Reply(404, payloads.error("Not Found", 404))
            reply.headers["x-accepted-oauth-scopes"] = _CLASSIC
            return reply
        level = "write" if write else "read"
        if "deployments:write" in grants or (not write and "deployments:read" in grants):
            return None
        kind = "personal access token" if call.token.startswith("github_pat_") else "integration"
        docs = _STATUS_DOCS if "deployment_id" in call.params else _CREATE_DOCS
        reply = Reply(403, payloads.error(f"Resource not accessible by {kind}", 403, docs))
        reply.headers["x-accepted-github-permissions"] = f"deployments={level}"
        return reply

    def _deployment_of(self, call: Call) -> Deployment | None:
        assert call.repo is not None
        return self.world.deployment(call.repo, int(call.params["deployment_id"]))

    def _with_scopes(self, reply: Reply) -> Reply:
        reply.headers.setdefault("x-accepted-oauth-scopes", _CLASSIC)
        return reply

    def _created(self, body: Json) -> Reply:
        reply = Reply(201, body)
        reply.headers["location"] = body["url"]
        return self._with_scopes(reply)

    async def _list_deployments(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        found = self.world.deployments(
            repo,
            **{
                key: call.query[key]
                for key in ("sha", "ref", "task", "environment")
                if call.query.get(key)
            },
        )
        chunk, headers = self._paginate(call, found, f"/repositories/{repo.id}/deployments")
        urls = self._urls()
        return self._with_scopes(Reply(200, [deployment_body(urls, d) for d in chunk], headers))

    async def _create_deployment(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        body = await _json_body(call, _DEPLOYMENT_FIELDS, "ref")
        if isinstance(body, Reply):
            return body
        try:
            created = self.world.create_deployment(
                repo,
                body["ref"],
                creator=self.actor,
                task=body.get("task", "deploy"),
                environment=body.get("environment", "production"),
                payload=body.get("payload", ""),
                description=body.get("description", ""),
                transient_environment=body.get("transient_environment", False),
                production_environment=body.get("production_environment"),
            )
        except WorldError as exc:
            return Reply(422, payloads.error(str(exc), 422, _CREATE_DOCS))
        return self._created(deployment_body(self._urls(), created))

    async def _get_deployment(self, call: Call) -> Reply:
        found = self._deployment_of(call)
        if found is None:
            return Reply(404, payloads.error("Not Found", 404))
        return self._with_scopes(Reply(200, deployment_body(self._urls(), found)))

    async def _list_statuses(self, call: Call) -> Reply:
        found = self._deployment_of(call)
        if found is None:
            return Reply(404, payloads.error("Not Found", 404))
        assert call.repo is not None
        chunk, headers = self._paginate(
            call,
            self.world.deployment_statuses(found),
            f"/repositories/{call.repo.id}/deployments/{found.id}/statuses",
        )
        urls = self._urls()
        return self._with_scopes(
            Reply(200, [status_body(urls, found, status) for status in chunk], headers)
        )

    async def _create_status(self, call: Call) -> Reply:
        found = self._deployment_of(call)
        if found is None:
            return Reply(404, payloads.error("Not Found", 404))
        body = await _json_body(call, _STATUS_FIELDS, "state")
        if isinstance(body, Reply):
            return body
        state, description = body["state"], body.get("description", "")
        field, problem = (
            ("state", "is not included in the list")
            if state not in STATES
            else ("description", "is too long (maximum is 140 characters)")
            if len(description) > 140
            else ("", "")
        )
        if field:
            error = payloads.error("Validation Failed", 422, _STATUS_DOCS)
            error["errors"] = [
                {
                    "resource": "DeploymentStatus",
                    "code": "custom",
                    "field": field,
                    "message": f"{field} {problem}",
                }
            ]
            return Reply(422, error)
        status = self.world.create_deployment_status(
            found,
            state,
            creator=self.actor,
            description=description,
            log_url=body.get("log_url") or body.get("target_url") or "",
            environment_url=body.get("environment_url", ""),
            environment=body.get("environment") or None,
            auto_inactive=body.get("auto_inactive", True),
        )
        return self._created(status_body(self._urls(), found, status))

    async def _get_status(self, call: Call) -> Reply:
        found = self._deployment_of(call)
        wanted = int(call.params["status_id"])
        status = next((s for s in found.statuses if s.id == wanted), None) if found else None
        if found is None or status is None:
            return Reply(404, payloads.error("Not Found", 404))
        return self._with_scopes(Reply(200, status_body(self._urls(), found, status)))

    async def _list_environments(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        envs = self.world.github_environments(repo)
        chunk, headers = self._paginate(call, envs, f"/repositories/{repo.id}/environments")
        urls = self._urls()
        body = {
            "total_count": len(envs),
            "environments": [environment_body(urls, repo, env) for env in chunk],
        }
        return Reply(200, body, headers)

    async def _get_environment(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        env = self.world.github_environment(repo, call.params["environment"])
        if env is None:
            return Reply(404, payloads.error("Not Found", 404))
        return Reply(200, environment_body(self._urls(), repo, env))


__all__ = ["READONLY_GRANTS", "SANDBOX_READONLY_TOKEN", "DeploymentEndpoints"]
