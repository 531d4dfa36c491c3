"""The sandbox GitHub's repository browsing: `GET /user/repos` and the contents API
(`GET /repos/{o}/{r}/contents/{path}?ref=…`, a file as base64 with its blob SHA; 404 when the
path is not there), which `vmkit-tui init` reads a repository's workflows and Kamal config from.

The files themselves are `GitHubSandbox.files` (repo full name → path → text), set by whoever
starts the sandbox (`sandbox/servers/repo_files.py` writes real-shaped ones for the world).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from vmkit_tui.sandbox.servers import github_payloads as payloads
from vmkit_tui.sandbox.servers.github_endpoints import Call, Reply
from vmkit_tui.sandbox.world.github import Repo
from vmkit_tui.sandbox.world.world import World

Files = Mapping[str, Mapping[str, str]]  # repo full name → path → text
CONTENTS_DOCS = "https://docs.github.com/rest/repos/contents#get-repository-content"


def blob_sha(text: str) -> str:
    """Git's blob id of the file, as GitHub reports it in `sha`."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class ContentEndpoints:
    """Part of `GitHubSandbox`: the browsing handlers."""

    world: World
    files: Files

    def _urls(self) -> payloads.Urls:
        raise NotImplementedError

    async def _user_repos(self, call: Call) -> Reply:
        urls = self._urls()
        repos = sorted(self.world.repos.values(), key=lambda repo: repo.full_name)
        return Reply(200, [repository(urls, repo) for repo in repos])

    async def _contents(self, call: Call) -> Reply:
        repo = call.repo
        assert repo is not None
        path = call.params["path"].strip("/")
        ref = call.query.get("ref", repo.default_branch)
        if ref not in repo.branches and not any(c.sha == ref for c in repo.commits):
            return Reply(404, payloads.error(f"No commit found for the ref {ref}", 404))
        files = self.files.get(repo.full_name, {})
        text = files.get(path)
        if text is not None:
            return Reply(200, file_body(self._urls(), repo, path, text, ref))
        inside = sorted(
            p for p in files if p.startswith(path + "/") and "/" not in p[len(path) + 1 :]
        )
        if not inside:
            return Reply(404, payloads.error("Not Found", 404, CONTENTS_DOCS))
        entries = []
        for entry in inside:
            body = file_body(self._urls(), repo, entry, files[entry], ref)
            del body["content"], body["encoding"]
            entries.append(body)
        return Reply(200, entries)


def file_body(urls: payloads.Urls, repo: Repo, path: str, text: str, ref: str) -> dict[str, Any]:
    encoded = base64.encodebytes(text.encode()).decode("ascii")  # GitHub wraps at 60 columns
    api = f"{urls.repo(repo)}/contents/{path}?ref={ref}"
    sha = blob_sha(text)
    html = f"{urls.html}/{repo.full_name}/blob/{ref}/{path}"
    git = f"{urls.repo(repo)}/git/blobs/{sha}"
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(text.encode()),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": sha,
        "url": api,
        "git_url": git,
        "html_url": html,
        "download_url": None,
        "_links": {"self": api, "git": git, "html": html},
    }


def repository(urls: payloads.Urls, repo: Repo) -> dict[str, Any]:
    """The full repository object `/user/repos` lists."""
    body = payloads.minimal_repository(urls, repo)
    stamp = payloads.iso(repo.created_at)
    pushed = payloads.iso(repo.commits[-1].date) if repo.commits else stamp
    body.update(
        {
            "clone_url": f"{urls.html}/{repo.full_name}.git",
            "git_url": f"git://sandbox/{repo.full_name}.git",
            "ssh_url": f"git@sandbox:{repo.full_name}.git",
            "svn_url": f"{urls.html}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "default_branch": repo.default_branch,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "open_issues": 0,
            "open_issues_count": 0,
            "size": 1,
            "has_downloads": True,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": pushed,
            "created_at": stamp,
            "updated_at": pushed,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }
    )
    return body
