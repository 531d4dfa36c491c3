"""GitHub REST response bodies for the sandbox server, rendered from the world.

Shapes follow GitHub's published OpenAPI description (tests validate them against
`tests/data/github-openapi-subset.json`) and real recorded responses: every required field is
present, ids/node_ids/URLs look like GitHub's, runs and jobs use second-precision `Z` times,
steps `.000Z`. API URLs use the sandbox's own base (as GHES uses `https://HOST/api/v3`);
`html_url`s point at the configured web base.
"""

from __future__ import annotations

import base64
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from vmkit_tui.sandbox.world.github import (
    Commit,
    Comparison,
    JobView,
    PackageVersion,
    Repo,
    Run,
    RunState,
    Workflow,
)

Json = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _node(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(number.to_bytes(8, "big")).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Urls:
    """Where the sandbox lives: `api` for API URLs, `html` for web URLs."""

    api: str
    html: str

    def repo(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"


@lru_cache(maxsize=512)  # constant per login; shared, never mutated
def user(urls: Urls, login: str, kind: str = "User") -> Json:
    ident = zlib.crc32(login.encode()) % 90_000_000 + 1_000_000
    url = f"{urls.api}/users/{login}"
    return {
        "login": login,
        "id": ident,
        "node_id": _node("U_kgDO" if kind == "User" else "O_kgDO", ident),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{ident}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{urls.html}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


@lru_cache(maxsize=64)  # constant per repo; shared, never mutated
def minimal_repository(urls: Urls, repo: Repo) -> Json:
    url = urls.repo(repo)
    templates = {
        "archive_url": "/{archive_format}{/ref}",
        "assignees_url": "/assignees{/user}",
        "blobs_url": "/git/blobs{/sha}",
        "branches_url": "/branches{/branch}",
        "collaborators_url": "/collaborators{/collaborator}",
        "comments_url": "/comments{/number}",
        "commits_url": "/commits{/sha}",
        "compare_url": "/compare/{base}...{head}",
        "contents_url": "/contents/{+path}",
        "contributors_url": "/contributors",
        "deployments_url": "/deployments",
        "downloads_url": "/downloads",
        "events_url": "/events",
        "forks_url": "/forks",
        "git_commits_url": "/git/commits{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "hooks_url": "/hooks",
        "issue_comment_url": "/issues/comments{/number}",
        "issue_events_url": "/issues/events{/number}",
        "issues_url": "/issues{/number}",
        "keys_url": "/keys{/key_id}",
        "labels_url": "/labels{/name}",
        "languages_url": "/languages",
        "merges_url": "/merges",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "pulls_url": "/pulls{/number}",
        "releases_url": "/releases{/id}",
        "stargazers_url": "/stargazers",
        "statuses_url": "/statuses/{sha}",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "tags_url": "/tags",
        "teams_url": "/teams",
        "trees_url": "/git/trees{/sha}",
    }
    body: Json = {
        "id": repo.id,
        "node_id": repo.node_id,
        "name": repo.name,
        "full_name": repo.full_name,
        "private": True,
        "owner": user(urls, repo.owner, "Organization"),
        "html_url": f"{urls.html}/{repo.full_name}",
        "description": None,
        "fork": False,
        "url": url,
    }
    body.update({key: url + suffix for key, suffix in templates.items()})
    return body


def workflow(urls: Urls, repo: Repo, flow: Workflow) -> Json:
    return {
        "id": flow.id,
        "node_id": flow.node_id,
        "name": flow.name,
        "path": flow.path,
        "state": "active",
        "created_at": iso(flow.created_at),
        "updated_at": iso(flow.created_at),
        "url": f"{urls.repo(repo)}/actions/workflows/{flow.id}",
        "html_url": f"{urls.html}/{repo.full_name}/blob/{repo.default_branch}/{flow.path}",
        "badge_url": f"{urls.html}/{repo.full_name}/workflows/{quote(flow.name)}/badge.svg",
    }


def workflow_run(
    urls: Urls, run: Run, state: RunState, head: Commit | None, attempt: int | None = None
) -> Json:
    """A run as GitHub shows it: its current attempt, or `attempt` (an earlier one)."""
    repo = run.repo
    number = attempt or run.run_attempt
    url = f"{urls.repo(repo)}/actions/runs/{run.id}"
    repository = minimal_repository(urls, repo)
    actor = user(urls, run.actor)
    head_commit = None
    if head is not None:
        head_commit = {
            "id": head.sha,
            "tree_id": f"{zlib.crc32(head.sha.encode()):08x}{head.sha[8:]}",
            "message": head.message,
            "timestamp": iso(head.date),
            "author": {"name": head.author_name, "email": head.email},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        }
    return {
        "id": run.id,
        "name": run.workflow.name,
        "node_id": run.node_id,
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.workflow.path,
        "display_title": run.display_title,
        "run_number": run.run_number,
        "event": run.event,
        "status": state.status,
        "conclusion": state.conclusion,
        "workflow_id": run.workflow.id,
        "check_suite_id": run.check_suite_id,
        "check_suite_node_id": _node("CS_kwDO", run.check_suite_id),
        "url": url,
        "html_url": f"{urls.html}/{repo.full_name}/actions/runs/{run.id}",
        "pull_requests": [],
        "created_at": iso(run.created_at),
        "updated_at": iso(state.updated_at),
        "actor": actor,
        "run_attempt": number,
        "referenced_workflows": [],
        "run_started_at": iso(state.run_started_at),
        "triggering_actor": user(urls, run.started_by(number)),
        "jobs_url": f"{url}/jobs",
        "logs_url": f"{url}/logs",
        "check_suite_url": f"{urls.repo(repo)}/check-suites/{run.check_suite_id}",
        "artifacts_url": f"{url}/artifacts",
        "cancel_url": f"{url}/cancel",
        "rerun_url": f"{url}/rerun",
        "previous_attempt_url": f"{url}/attempts/{number - 1}" if number > 1 else None,
        "workflow_url": f"{urls.repo(repo)}/actions/workflows/{run.workflow.id}",
        "head_commit": head_commit,
        "repository": repository,
        "head_repository": repository,
        "head_repository_id": repo.id,
    }


def job(urls: Urls, run: Run, view: JobView) -> Json:
    repo_url = urls.repo(run.repo)
    has_runner = view.runner_id is not None
    return {
        "id": view.id,
        "run_id": run.id,
        "workflow_name": view.workflow_name,
        "head_branch": view.head_branch,
        "run_url": f"{repo_url}/actions/runs/{run.id}",
        "run_attempt": view.run_attempt,
        "node_id": _node("CR_kwDO", view.id),
        "head_sha": view.head_sha,
        "url": f"{repo_url}/actions/jobs/{view.id}",
        "html_url": f"{urls.html}/{run.repo.full_name}/actions/runs/{run.id}/job/{view.id}",
        "status": view.status,
        "conclusion": view.conclusion,
        "created_at": iso(view.created_at),
        "started_at": iso(view.started_at),
        "completed_at": iso(view.completed_at),
        "name": view.name,
        "steps": [
            {
                "name": step.name,
                "status": step.status,
                "conclusion": step.conclusion,
                "number": step.number,
                "started_at": iso_ms(step.started_at),
                "completed_at": iso_ms(step.completed_at),
            }
            for step in view.steps
        ],
        "check_run_url": f"{repo_url}/check-runs/{view.id}",
        "labels": ["ubuntu-latest"],
        "runner_id": view.runner_id,
        "runner_name": view.runner_name,
        "runner_group_id": 2 if has_runner else None,
        "runner_group_name": "GitHub Actions" if has_runner else None,
    }


def _file_stats(commit: Commit, filename: str) -> tuple[int, int]:
    rng = random.Random(f"{commit.sha}:{filename}")
    return rng.randrange(1, 120), rng.randrange(0, 40)


def file_entry(urls: Urls, repo: Repo, commit: Commit, filename: str, status: str) -> Json:
    additions, deletions = _file_stats(commit, filename)
    if status == "added":
        deletions = 0
    blob = f"{zlib.crc32((commit.sha + filename).encode()):08x}{commit.sha[8:]}"
    path = quote(filename)
    return {
        "sha": blob,
        "filename": filename,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": f"{urls.html}/{repo.full_name}/blob/{commit.sha}/{path}",
        "raw_url": f"{urls.html}/{repo.full_name}/raw/{commit.sha}/{path}",
        "contents_url": f"{urls.repo(repo)}/contents/{path}?ref={commit.sha}",
        "patch": f"@@ -1,{deletions} +1,{additions} @@",
    }


def commit(
    urls: Urls, repo: Repo, item: Commit, *, files: list[tuple[str, str]] | None = None
) -> Json:
    """A commit; with `files` ((name, status) pairs) also `stats` and `files`, as the single
    commit endpoint sends."""
    url = f"{urls.repo(repo)}/commits/{item.sha}"
    body: Json = {
        "url": url,
        "sha": item.sha,
        "node_id": _node("C_kwDO", int(item.sha[:15], 16)),
        "html_url": f"{urls.html}/{repo.full_name}/commit/{item.sha}",
        "comments_url": f"{url}/comments",
        "commit": {
            "url": f"{urls.repo(repo)}/git/commits/{item.sha}",
            "author": {"name": item.author_name, "email": item.email, "date": iso(item.date)},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "date": iso(item.date)},
            "message": item.message,
            "tree": {
                "sha": f"{zlib.crc32(item.sha.encode()):08x}{item.sha[8:]}",
                "url": f"{urls.repo(repo)}/git/trees/{item.sha}",
            },
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": user(urls, item.author_login),
        "committer": user(urls, "web-flow"),
        "parents": (
            []
            if item.parent is None
            else [
                {
                    "sha": item.parent,
                    "url": f"{urls.repo(repo)}/commits/{item.parent}",
                    "html_url": f"{urls.html}/{repo.full_name}/commit/{item.parent}",
                }
            ]
        ),
    }
    if files is not None:
        entries = [file_entry(urls, repo, item, name, status) for name, status in files]
        additions = sum(entry["additions"] for entry in entries)
        deletions = sum(entry["deletions"] for entry in entries)
        body["stats"] = {
            "total": additions + deletions,
            "additions": additions,
            "deletions": deletions,
        }
        body["files"] = entries
    return body


MAX_COMPARE_COMMITS = 250
MAX_COMPARE_FILES = 300


def comparison(urls: Urls, repo: Repo, found: Comparison, basehead: str) -> Json:
    owner = repo.owner
    return {
        "url": f"{urls.repo(repo)}/compare/{basehead}",
        "html_url": f"{urls.html}/{repo.full_name}/compare/{basehead}",
        "permalink_url": (
            f"{urls.html}/{repo.full_name}/compare/{owner}:{found.base.sha[:7]}...{owner}:{found.head.sha[:7]}"
        ),
        "diff_url": f"{urls.html}/{repo.full_name}/compare/{basehead}.diff",
        "patch_url": f"{urls.html}/{repo.full_name}/compare/{basehead}.patch",
        "base_commit": commit(urls, repo, found.base),
        "merge_base_commit": commit(urls, repo, found.merge_base),
        "status": found.status,
        "ahead_by": found.ahead_by,
        "behind_by": found.behind_by,
        "total_commits": found.ahead_by,
        "commits": [commit(urls, repo, item) for item in found.commits[-MAX_COMPARE_COMMITS:]],
        "files": [
            file_entry(urls, repo, found.head, change.filename, change.status)
            for change in found.files[:MAX_COMPARE_FILES]
        ],
    }


def package_version(urls: Urls, repo: Repo, version: PackageVersion) -> Json:
    package = repo.package_name
    return {
        "id": version.id,
        "name": version.digest,
        "url": f"{urls.api}/orgs/{repo.owner}/packages/container/{quote(package, safe='')}/versions/{version.id}",
        "package_html_url": f"{urls.html}/orgs/{repo.owner}/packages/container/package/{package}",
        "created_at": iso(version.created_at),
        "updated_at": iso(version.created_at),
        "html_url": f"{urls.html}/orgs/{repo.owner}/packages/container/{package}/{version.id}",
        "metadata": {"package_type": "container", "container": {"tags": list(version.tags)}},
    }


def rate_limit(limit: int, used: int, reset: int, *, with_rate: bool) -> Json:
    core = {"limit": limit, "used": used, "remaining": max(0, limit - used), "reset": reset}
    body: Json = {
        "resources": {
            "core": core,
            "search": {"limit": 30, "used": 0, "remaining": 30, "reset": reset},
            "graphql": {"limit": 5000, "used": 0, "remaining": 5000, "reset": reset},
        }
    }
    if with_rate:  # removed in API version 2026-03-10
        body["rate"] = dict(core)
    return body


def error(message: str, status: int, docs: str = "https://docs.github.com/rest") -> Json:
    return {"message": message, "documentation_url": docs, "status": str(status)}
