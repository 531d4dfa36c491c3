"""The deploy domain: identities, append-only events, and the state derived from them.

Pure Python (no Textual, no I/O). A deploy's identity is written once; everything that happens to
it afterwards is an appended `DeployEvent`. Status, times and duration are *derived* from the
events, so the history never stores the same fact twice and never rewrites a record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, cast

SHA_PATTERN = re.compile(r"[0-9a-f]{40}")
# What people type for a commit: the 7-character short SHA shown everywhere, or more of it.
SHA_PREFIX_PATTERN = re.compile(r"[0-9a-f]{7,40}")
# Names from config or remote APIs that end up in paths, file names or remote commands.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A directory on a host for `cd --`: never an option, no spaces or shell characters.
WORKDIR_PATTERN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./-]{0,255}")
# GitHub's rules: owner 1-39 letters, digits or '-' (not first); name 1-100 letters, digits,
# '-', '_' or '.', but not "." or ".." (those would walk out of /repos/{owner}/{name}/ in a URL).
REPO_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.\.?\Z)[A-Za-z0-9_.-]{1,100}")
DEPLOY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")


class ValidationError(ValueError):
    """A value from outside (user, config, remote) failed validation."""


def validate_sha(value: object) -> str:
    """Return `value` if it is a full lowercase 40-hex commit SHA, else raise.

    `re.fullmatch` on purpose: `re.match('^…$')` accepts a trailing newline.
    """
    if not isinstance(value, str) or not SHA_PATTERN.fullmatch(value):
        raise ValidationError(f"not a full commit SHA (40 lowercase hex characters): {value!r:.60}")
    return value


def is_sha(value: object) -> bool:
    return isinstance(value, str) and SHA_PATTERN.fullmatch(value) is not None


def is_sha_prefix(value: object) -> bool:
    """7 to 40 lowercase hex: a short SHA or a full one (resolved against the history)."""
    return isinstance(value, str) and SHA_PREFIX_PATTERN.fullmatch(value) is not None


def validate_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValidationError(f"invalid {what}: {value!r:.60}")
    return value


def validate_repo(value: object) -> str:
    if not isinstance(value, str) or not REPO_PATTERN.fullmatch(value):
        raise ValidationError(f"expected owner/name, got {value!r:.60}")
    return value


def new_deploy_id() -> str:
    return uuid.uuid4().hex[:12]


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """UTC ISO-8601 with a `Z`, the form GitHub uses and the history file stores."""
    if moment.tzinfo is None:
        raise ValidationError("naive datetime: every time in vmkit-tui is UTC-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)  # 3.11+ reads the trailing Z itself
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        raise ValidationError(f"timestamp without a zone: {text!r:.40}")
    return moment.astimezone(UTC)


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    CANCELLING = "cancelling"  # transient: a cancel was requested, the run has not stopped yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES


FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
ACTIVE_STATUSES = frozenset({Status.PENDING, Status.RUNNING, Status.CANCELLING})


class Trigger(StrEnum):
    PUSH = "push"  # automatic, from a push to the branch
    MANUAL = "manual"  # from the TUI or the CLI
    MCP = "mcp"  # from an AI assistant through the MCP server


_TRIGGERS = {trigger.value: trigger for trigger in Trigger}


def _as_trigger(value: object) -> Trigger:
    """`Trigger(value)`, same result and same error, without the enum call's cost for a member
    or its value (the history's cold read makes thousands of deploys)."""
    if type(value) is Trigger:
        return value
    trigger = _TRIGGERS.get(value) if type(value) is str else None
    return trigger if trigger is not None else Trigger(cast(str, value))


class EventKind(StrEnum):
    CREATED = "created"  # the deploy record exists (first event of every deploy)
    RUN_LINKED = "run_linked"  # the GitHub run behind a dispatched deploy became known
    STATUS = "status"  # the status changed (`status` holds the new one)
    CANCEL_REQUESTED = "cancel_requested"
    FIRST_HEALTHY = "first_healthy"  # kamal-proxy saw the new container healthy: duration ends
    DIAGNOSIS = "diagnosis"  # why a deploy failed (data: cause, fix, line, source)
    NOTE = "note"  # anything else worth keeping in the audit trail


@dataclass(frozen=True, slots=True)
class Deploy:
    """A deploy's identity: written once, never changed."""

    id: str
    repo: str
    environment: str
    sha: str
    triggered_by: Trigger
    actor: str
    created_at: datetime
    run_id: int | None = None
    run_url: str | None = None
    rollback_of: str | None = None

    def __post_init__(self) -> None:
        validate_sha(self.sha)
        validate_repo(self.repo)
        validate_name(self.environment, "environment name")
        if not DEPLOY_ID_PATTERN.fullmatch(self.id):
            raise ValidationError(f"invalid deploy id: {self.id!r:.40}")
        if self.rollback_of is not None and not DEPLOY_ID_PATTERN.fullmatch(self.rollback_of):
            raise ValidationError(f"invalid rollback_of: {self.rollback_of!r:.40}")
        if self.created_at.tzinfo is None:
            raise ValidationError("created_at must be UTC-aware")
        trigger = _as_trigger(self.triggered_by)
        if trigger is not self.triggered_by:
            object.__setattr__(self, "triggered_by", trigger)

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repo": self.repo,
            "environment": self.environment,
            "sha": self.sha,
            "triggered_by": self.triggered_by.value,
            "actor": self.actor,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "rollback_of": self.rollback_of,
            "created_at": to_iso(self.created_at),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Deploy:
        return cls(
            id=doc["id"],
            repo=doc["repo"],
            environment=doc["environment"],
            sha=doc["sha"],
            triggered_by=_as_trigger(doc["triggered_by"]),
            actor=doc["actor"],
            run_id=doc.get("run_id"),
            run_url=doc.get("run_url"),
            rollback_of=doc.get("rollback_of"),
            created_at=from_iso(doc["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event not yet in the history. `event_id` makes appends idempotent: pass a
    deterministic one (from `event_ids`) when several processes may record the same fact."""

    deploy_id: str
    kind: EventKind
    at: datetime
    status: Status | None = None
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)


class DeployEvent(NamedTuple):
    """An appended event, with its place (`seq`) in the history file.

    A NamedTuple rather than a frozen dataclass: the TUI builds tens of thousands of these at
    start-up, and a tuple is several times cheaper to make while just as immutable."""

    event_id: str
    deploy_id: str
    seq: int
    at: datetime
    kind: EventKind
    status: Status | None
    detail: str
    data: Mapping[str, Any]

    def to_doc(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "deploy_id": self.deploy_id,
            "seq": self.seq,
            "at": to_iso(self.at),
            "kind": self.kind.value,
            "status": self.status.value if self.status else None,
            "detail": self.detail,
            "data": dict(self.data),
        }

    @classmethod
    def from_new(cls, new: NewEvent, seq: int) -> DeployEvent:
        return cls(
            new.event_id,
            new.deploy_id,
            seq,
            new.at,
            new.kind,
            new.status,
            new.detail,
            dict(new.data),
        )


class DurationBasis(StrEnum):
    FIRST_HEALTHY = "first_healthy"  # run start → first healthy response (the real figure)
    RUN_COMPLETED = "run_completed"  # no healthy moment known: run start → run completion


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why a deploy failed: the cause, the log line it came from, and a one-line fix."""

    cause: str
    fix: str
    line: str
    source: str = ""
    line_number: int | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "fix": self.fix,
            "line": self.line,
            "source": self.source,
            "line_number": self.line_number,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Diagnosis:
        return cls(
            cause=str(data.get("cause", "")),
            fix=str(data.get("fix", "")),
            line=str(data.get("line", "")),
            source=str(data.get("source", "")),
            line_number=data.get("line_number"),
        )


@dataclass(frozen=True, slots=True)
class DeployRecord:
    """A deploy with its events, and everything derived from them."""

    deploy: Deploy
    events: tuple[DeployEvent, ...]

    @classmethod
    def build(cls, deploy: Deploy, events: Iterable[DeployEvent]) -> DeployRecord:
        return cls(deploy, tuple(sorted(events, key=lambda e: e.seq)))

    @property
    def id(self) -> str:
        return self.deploy.id

    @property
    def status(self) -> Status:
        return derive_status(self.events)

    @property
    def run_id(self) -> int | None:
        if self.deploy.run_id is not None:
            return self.deploy.run_id
        for event in self.events:
            if event.kind is EventKind.RUN_LINKED and "run_id" in event.data:
                return int(event.data["run_id"])
        return None

    @property
    def run_url(self) -> str | None:
        if self.deploy.run_url:
            return self.deploy.run_url
        for event in self.events:
            if event.kind is EventKind.RUN_LINKED and event.data.get("run_url"):
                return str(event.data["run_url"])
        return None

    @property
    def started_at(self) -> datetime | None:
        for event in self.events:
            if event.kind is EventKind.STATUS and event.status is Status.RUNNING:
                return event.at
        return None

    @property
    def first_healthy_at(self) -> datetime | None:
        for event in self.events:
            if event.kind is EventKind.FIRST_HEALTHY:
                return event.at
        return None

    @property
    def finished_at(self) -> datetime | None:
        for event in self.events[::-1]:
            if event.kind is EventKind.STATUS and event.status in FINAL_STATUSES:
                return event.at
        return None

    @property
    def duration(self) -> tuple[timedelta, DurationBasis] | None:
        """Start → first healthy response; until that is known, start → run completion."""
        start = self.started_at
        if start is None:
            return None
        healthy = self.first_healthy_at
        if healthy is not None and healthy >= start:
            return healthy - start, DurationBasis.FIRST_HEALTHY
        finished = self.finished_at
        if finished is not None and finished >= start:
            return finished - start, DurationBasis.RUN_COMPLETED
        return None

    @property
    def diagnosis(self) -> Diagnosis | None:
        for event in reversed(self.events):
            if event.kind is EventKind.DIAGNOSIS:
                return Diagnosis.from_data(event.data)
        return None

    @property
    def run_attempt(self) -> int:
        """Which attempt of its GitHub run this deploy is: a re-run is a deploy of its own,
        whose CREATED event says its attempt (none said: the first)."""
        for event in self.events:
            if event.kind is EventKind.CREATED:
                value = event.data.get("run_attempt", 1)
                return value if type(value) is int and value > 0 else 1
        return 1

    @property
    def title(self) -> str:
        """The commit message's first line (or the run title), recorded at creation. Remote text."""
        for event in self.events:
            if event.kind is EventKind.CREATED:
                return str(event.data.get("title", ""))
        return ""

    @property
    def cancel_requested(self) -> bool:
        return any(e.kind is EventKind.CANCEL_REQUESTED for e in self.events)


def derive_status(events: Sequence[DeployEvent]) -> Status:
    """The current status: the last status event wins, but a final status is never left
    (a late 'running' seen by a slow watcher cannot resurrect a finished deploy), and a
    cancel request on an active deploy shows as `cancelling` until the run really stops."""
    status = Status.PENDING
    cancel_requested = False
    for event in events:
        if event.kind is EventKind.CANCEL_REQUESTED:
            cancel_requested = True
        elif event.kind is EventKind.STATUS and event.status is not None:
            if status.is_final:
                continue
            status = event.status
    if cancel_requested and status in (Status.PENDING, Status.RUNNING):
        return Status.CANCELLING
    return status
