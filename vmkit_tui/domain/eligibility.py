"""Whether a deploy can be rolled back to, decided from facts gathered before any key is pressed.

Kamal's `kamal rollback VERSION` only boots a container that still exists on every app host
(it keeps `retain_containers`, 5 by default, and prunes on each deploy); `kamal deploy
--skip-push --version V` pulls the image instead, so it works while GHCR still has the tag;
neither works for a version that was never built or whose image was deleted. So per version:

- `retained`: a container of it on every host (the fast path, no pull);
- `in_registry`: missing on at least one host, but its image is in GHCR (a pull is needed);
- `gone`: missing on a host and not in GHCR (only a rebuild brings it back);
- `unknown`: not checked yet, or a fact needed for the answer could not be gathered.

Pure: the facts (`HostContainers` per host, `RegistryTags` per image) are gathered elsewhere;
reasons name hosts and quote what could not be checked (callers sanitise remote text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "NOT_CHECKED",
    "Eligibility",
    "EligibilityFacts",
    "HostContainers",
    "RegistryTags",
    "RollbackEligibility",
    "rollback_eligibility",
]


class Eligibility(StrEnum):
    RETAINED = "retained"
    IN_REGISTRY = "in_registry"
    GONE = "gone"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostContainers:
    """The versions with an app container (any state) on one host; `versions` None when the
    host could not be asked (`problem` says why)."""

    host: str
    versions: frozenset[str] | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class RegistryTags:
    """The tags of one image in GHCR; `tags` None when they could not be listed (`problem`);
    `complete` False when only the newest versions were listed (a tag not among them may exist).
    """

    image: str
    tags: frozenset[str] | None
    problem: str = ""
    complete: bool = True

    def has(self, sha: str) -> bool | None:
        """Whether GHCR has the tag (None: cannot tell)."""
        if self.tags is None:
            return None
        return True if sha in self.tags else (False if self.complete else None)


@dataclass(frozen=True, slots=True)
class EligibilityFacts:
    """Everything one refresh learned about one environment."""

    hosts: tuple[HostContainers, ...]
    registry: RegistryTags
    checked_at: datetime


@dataclass(frozen=True, slots=True)
class RollbackEligibility:
    """The verdict for one version, with the reason in words and the hosts that lack it."""

    state: Eligibility
    reason: str
    missing_on: tuple[str, ...] = ()
    checked_at: datetime | None = field(default=None, compare=False)

    @property
    def kamal_rollback_works(self) -> bool:
        """Whether `kamal rollback` would find the container on every host."""
        return self.state is Eligibility.RETAINED


NOT_CHECKED = RollbackEligibility(Eligibility.UNKNOWN, "not checked yet")


def _hosts(names: Sequence[str]) -> str:
    return ", ".join(names)


def rollback_eligibility(sha: str, facts: EligibilityFacts | None) -> RollbackEligibility:
    """The eligibility of version `sha` given one environment's `facts` (None: not checked)."""
    if facts is None:
        return NOT_CHECKED
    at = facts.checked_at
    if not facts.hosts:
        return RollbackEligibility(
            Eligibility.UNKNOWN, "no hosts configured, so no containers to check", checked_at=at
        )
    unreachable = [host for host in facts.hosts if host.versions is None]
    missing = tuple(h.host for h in facts.hosts if h.versions is not None and sha not in h.versions)
    if not unreachable and not missing:
        return RollbackEligibility(
            Eligibility.RETAINED,
            f"container kept on every host ({_hosts([h.host for h in facts.hosts])})",
            checked_at=at,
        )
    registry = facts.registry
    ref = f"{registry.image}:{sha[:7]}"
    has = registry.has(sha)
    if has:
        image = f"image {ref} in GHCR"
    elif has is False:
        image = f"no tag {sha[:7]} in GHCR ({registry.image})"
    elif registry.tags is None:
        image = f"cannot check GHCR for {ref}: {registry.problem}"
    else:
        image = f"tag {sha[:7]} not among the newest versions listed in GHCR ({registry.image})"
    if not missing:  # only unreachable hosts stand between this version and "retained"
        problems = "; ".join(f"{h.host}: {h.problem}" for h in unreachable)
        return RollbackEligibility(
            Eligibility.UNKNOWN, f"cannot list containers on {problems}; {image}", checked_at=at
        )
    lacking = f"no container on {_hosts(missing)}"
    if unreachable:
        lacking += f" (and cannot check {_hosts([h.host for h in unreachable])})"
    if has is None:
        state = Eligibility.UNKNOWN
    else:
        state = Eligibility.IN_REGISTRY if has else Eligibility.GONE
    return RollbackEligibility(state, f"{lacking}; {image}", missing, checked_at=at)
