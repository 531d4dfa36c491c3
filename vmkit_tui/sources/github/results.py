"""Typed, validated results of GitHub REST calls (frozen; unknown fields ignored).

Parsers raise `ValueError`/`KeyError`/`TypeError` on a wrong shape; the client turns those into
`BadResponse` naming the endpoint. SHAs go through `models.validate_sha`; times accept any
ISO-8601 form GitHub uses (`Z`, `.000Z`, `.000+01:00`) and are stored in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from vmkit_tui.domain.eligibility import RegistryTags
from vmkit_tui.domain.models import Status, from_iso, validate_sha

MAX_COMPARE_FILES = 300  # GitHub lists at most this many files in a comparison


def _field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"field {key!r}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type) -> Any:
    return None if data.get(key) is None else _field(data, key, kind)


def _time(data: Mapping[str, Any], key: str) -> datetime:
    return from_iso(_field(data, key, str))


def _optional_time(data: Mapping[str, Any], key: str) -> datetime | None:
    return None if data.get(key) is None else _time(data, key)


def _login(data: Mapping[str, Any], key: str) -> str | None:
    user = data.get(key)
    return _optional(user, "login", str) if isinstance(user, Mapping) else None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    id: int
    run_number: int
    run_attempt: int
    event: str
    status: str  # queued, in_progress, completed, waiting, requested, pending
    conclusion: str | None  # None until completed
    head_sha: str
    head_branch: str | None
    display_title: str
    html_url: str
    actor: str | None  # who triggered the run's first attempt
    created_at: datetime
    updated_at: datetime
    run_started_at: datetime | None
    triggering_actor: str | None = None  # who started this attempt (a re-run: who re-ran it)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WorkflowRun:
        return cls(
            id=_field(data, "id", int),
            run_number=_field(data, "run_number", int),
            run_attempt=_optional(data, "run_attempt", int) or 1,
            event=_field(data, "event", str),
            status=_optional(data, "status", str) or "queued",
            conclusion=_optional(data, "conclusion", str),
            head_sha=validate_sha(data.get("head_sha")),
            head_branch=_optional(data, "head_branch", str),
            display_title=_optional(data, "display_title", str) or "",
            html_url=_field(data, "html_url", str),
            actor=_login(data, "actor"),
            created_at=_time(data, "created_at"),
            updated_at=_time(data, "updated_at"),
            run_started_at=_optional_time(data, "run_started_at"),
            triggering_actor=_login(data, "triggering_actor"),
        )

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"

    @property
    def deploy_status(self) -> Status:
        """GitHub's status/conclusion in the deploy vocabulary (skipped, timed_out… = failed)."""
        if self.status == "in_progress":
            return Status.RUNNING
        if self.status != "completed":
            return Status.PENDING
        if self.conclusion == "success":
            return Status.SUCCEEDED
        if self.conclusion == "cancelled":
            return Status.CANCELLED
        return Status.FAILED


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    number: int  # not contiguous (post-steps jump ahead): sort by it, never index by it
    status: str
    conclusion: str | None
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            name=_field(data, "name", str),
            number=_field(data, "number", int),
            status=_field(data, "status", str),
            conclusion=_optional(data, "conclusion", str),
            started_at=_optional_time(data, "started_at"),
            completed_at=_optional_time(data, "completed_at"),
        )


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    run_id: int
    name: str
    status: str
    conclusion: str | None
    started_at: datetime | None
    completed_at: datetime | None
    html_url: str | None
    steps: tuple[Step, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Job:
        steps = data.get("steps") or []
        if not isinstance(steps, list):
            raise TypeError("field 'steps': expected list")
        return cls(
            id=_field(data, "id", int),
            run_id=_field(data, "run_id", int),
            name=_field(data, "name", str),
            status=_field(data, "status", str),
            conclusion=_optional(data, "conclusion", str),
            started_at=_optional_time(data, "started_at"),
            completed_at=_optional_time(data, "completed_at"),
            html_url=_optional(data, "html_url", str),
            steps=tuple(sorted((Step.from_api(s) for s in steps), key=lambda s: s.number)),
        )

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    message: str
    author_name: str | None
    author_login: str | None
    date: datetime | None
    html_url: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Commit:
        inner = _field(data, "commit", Mapping)
        author = inner.get("author") if isinstance(inner.get("author"), Mapping) else {}
        return cls(
            sha=validate_sha(data.get("sha")),
            message=_optional(inner, "message", str) or "",
            author_name=_optional(author, "name", str),
            author_login=_login(data, "author"),
            date=_optional_time(author, "date"),
            html_url=_optional(data, "html_url", str),
        )


@dataclass(frozen=True, slots=True)
class CompareResult:
    """`compare(base, head)`: what `head` has that `base` lacks (git log base..head)."""

    status: str  # ahead | behind | diverged | identical
    ahead_by: int
    behind_by: int
    total_commits: int
    files: tuple[str, ...]  # changed paths, merge base → head (renames: the new path)
    commits: tuple[Commit, ...]  # oldest first

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CompareResult:
        files = data.get("files") or []
        commits = data.get("commits") or []
        if not isinstance(files, list) or not isinstance(commits, list):
            raise TypeError("'files' and 'commits' must be lists")
        return cls(
            status=_field(data, "status", str),
            ahead_by=_field(data, "ahead_by", int),
            behind_by=_field(data, "behind_by", int),
            total_commits=_optional(data, "total_commits", int) or len(commits),
            files=tuple(_field(f, "filename", str) for f in files),
            commits=tuple(Commit.from_api(c) for c in commits),
        )

    @property
    def files_truncated(self) -> bool:
        """GitHub stops listing files at 300: the list may be incomplete."""
        return len(self.files) >= MAX_COMPARE_FILES


class ImageState(StrEnum):
    PRESENT = "present"
    MISSING = "missing"
    CANNOT_CHECK = "cannot_check"  # no read:packages, unknown package, not on GHCR…


@dataclass(frozen=True, slots=True)
class ImageCheck:
    state: ImageState
    reason: str = ""  # why it cannot be checked (empty otherwise)

    @classmethod
    def of(cls, registry: RegistryTags, sha: str) -> ImageCheck:
        """Is `registry.image:sha` in GHCR, by the image's tag listing? "Missing" only when
        the listing was complete."""
        has = registry.has(sha)
        if has is not None:
            return cls(ImageState.PRESENT if has else ImageState.MISSING)
        if registry.tags is None:
            return cls(ImageState.CANNOT_CHECK, registry.problem)
        return cls(ImageState.CANNOT_CHECK, "tag not among the newest versions listed")

    @property
    def present(self) -> bool:
        return self.state is ImageState.PRESENT

    @property
    def missing(self) -> bool:
        return self.state is ImageState.MISSING


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """The run a dispatch started; all None when GitHub accepted it but the run is not found yet
    (look again later with `find_dispatched_run`)."""

    run_id: int | None
    run_url: str | None
    html_url: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DispatchResult:
        return cls(
            run_id=_field(data, "workflow_run_id", int),
            run_url=_field(data, "run_url", str),
            html_url=_field(data, "html_url", str),
        )

    @classmethod
    def from_run(cls, run: WorkflowRun, api_run_url: str) -> DispatchResult:
        return cls(run.id, api_run_url, run.html_url)


class CancelOutcome(StrEnum):
    REQUESTED = "requested"  # 202: the run will stop at its current step (asynchronously)
    ALREADY_FINISHED = "already_finished"  # 409: it completed first; not an error


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    remaining: int
    used: int
    reset: datetime
    resource: str = "core"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RateLimit:
        """From `GET /rate_limit` (`resources.core`; the top-level `rate` is deprecated)."""
        core = _field(_field(data, "resources", Mapping), "core", Mapping)
        return cls(
            limit=_field(core, "limit", int),
            remaining=_field(core, "remaining", int),
            used=_field(core, "used", int),
            reset=datetime.fromtimestamp(_field(core, "reset", int), UTC),
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """From `x-ratelimit-*` headers, or None (GHES disables rate limits by default)."""
        try:
            return cls(
                limit=int(headers["x-ratelimit-limit"]),
                remaining=int(headers["x-ratelimit-remaining"]),
                used=int(headers.get("x-ratelimit-used", "0")),
                reset=datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC),
                resource=headers.get("x-ratelimit-resource", "core"),
            )
        except (KeyError, ValueError, OverflowError, OSError):
            return None
