"""Browsing a user's repositories, for `vmkit-tui init` and Kamal configs kept in a repo: the
user's repos, a repo's workflows, and one file through the contents API (base64, with its blob
SHA; conditional like every GET, so an unchanged file costs a free 304)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from vmkit_tui.sources.github.errors import NotFound
from vmkit_tui.sources.github.session import ApiSession, _parse

_FILE_PATH = re.compile(r"(?!/)(?!.*//)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9._/-]{1,400}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


@dataclass(frozen=True, slots=True)
class RepoFile:
    path: str
    sha: str  # the blob SHA: changes exactly when the content does
    text: str


@dataclass(frozen=True, slots=True)
class RepoInfo:
    full_name: str
    default_branch: str
    archived: bool = False

    @classmethod
    def from_api(cls, data: Any) -> RepoInfo:
        return cls(
            full_name=str(data["full_name"]),
            default_branch=str(data.get("default_branch") or "main"),
            archived=bool(data.get("archived", False)),
        )


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    id: int
    name: str
    path: str  # .github/workflows/deploy.yml
    state: str

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @classmethod
    def from_api(cls, data: Any) -> WorkflowInfo:
        return cls(int(data["id"]), str(data["name"]), str(data["path"]), str(data["state"]))


class RepoBrowsing(ApiSession):
    """Part of `GitHubClient`: the browsing endpoints."""

    async def user_repos(self, *, max_pages: int = 10) -> list[RepoInfo]:
        """The repositories the token's user can see (owned, collaborator, organisation)."""
        url = f"{self.api_url}/user/repos"
        params: dict[str, str | int] = {"per_page": 100, "sort": "full_name"}
        return await self._collect(url, params, "", max_pages, RepoInfo.from_api)

    async def workflows(self, repo: str) -> list[WorkflowInfo]:
        url = self.repo_url(repo, "actions/workflows")
        return await self._collect(url, {"per_page": 100}, "workflows", 5, WorkflowInfo.from_api)

    async def get_file(self, repo: str, path: str, ref: str | None = None) -> RepoFile | None:
        """The file at `path` (on `ref`, else the default branch), or None when there is none
        (GitHub answers 404 for a missing path as for a repo the token cannot see)."""
        if not _FILE_PATH.fullmatch(path):
            raise ValueError(f"not a repository file path: {path[:80]!r}")
        params = {"ref": ref} if ref is not None else None
        if ref is not None and not _REF.fullmatch(ref):
            raise ValueError(f"not a ref: {ref[:80]!r}")
        url = self.repo_url(repo, f"contents/{quote(path, safe='/')}")
        try:
            reply = await self._get(url, params)
        except NotFound:
            return None
        return _parse(reply, _file, [reply.body])[0]

    async def list_dir(self, repo: str, path: str, ref: str | None = None) -> list[str]:
        """The names in a directory of the repo ([] when there is no such directory)."""
        if not _FILE_PATH.fullmatch(path) or (ref is not None and not _REF.fullmatch(ref)):
            raise ValueError(f"not a repository path and ref: {path[:80]!r}")
        url = self.repo_url(repo, f"contents/{quote(path, safe='/')}")
        try:
            reply = await self._get(url, {"ref": ref} if ref is not None else None)
        except NotFound:
            return []
        if not isinstance(reply.body, list):  # a file, not a directory
            return []
        return _parse(reply, lambda item: str(item["name"]), reply.body)


def _file(data: Any) -> RepoFile:
    """A file's JSON (ValueError for anything else: `_parse` names the endpoint)."""
    if not isinstance(data, dict) or data.get("type") != "file":
        kind = data.get("type") if isinstance(data, dict) else "a list"
        raise ValueError(f"expected a file, got {str(kind)[:20]}")
    if data.get("encoding") != "base64":
        raise ValueError(f"file content in {str(data.get('encoding'))[:20]!r}, not base64")
    text = base64.b64decode(str(data["content"])).decode("utf-8")  # ValueError when not
    return RepoFile(path=str(data["path"]), sha=str(data["sha"]), text=text)
