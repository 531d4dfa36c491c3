"""What an environment looks like at a glance, derived from its deploy records (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmkit_tui.domain.models import DeployRecord, Status

SPARK_BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class EnvironmentSummary:
    repo: str
    environment: str
    live: DeployRecord | None  # the newest deploy that succeeded: what serves traffic now
    last: DeployRecord | None  # the newest deploy of any status
    durations: tuple[float, ...]  # seconds, oldest first, of recent finished deploys
    success_rate: float | None  # over finished deploys, None when none finished
    active: int  # deploys pending, running or cancelling

    @property
    def live_sha(self) -> str | None:
        return self.live.deploy.sha if self.live else None

    @property
    def last_status(self) -> Status | None:
        return self.last.status if self.last else None


def newest_first(records: Sequence[DeployRecord]) -> list[DeployRecord]:
    return sorted(records, key=lambda r: (r.deploy.created_at, r.deploy.id), reverse=True)


def summarize(
    repo: str, environment: str, records: Sequence[DeployRecord], recent: int = 12
) -> EnvironmentSummary:
    """`records` are one environment's deploys, in any order."""
    ordered = newest_first(records)
    statuses = [r.status for r in ordered]
    live = next((r for r, s in zip(ordered, statuses, strict=True) if s is Status.SUCCEEDED), None)
    finished = [s for s in statuses if s.is_final]
    rate = sum(s is Status.SUCCEEDED for s in finished) / len(finished) if finished else None
    durations: list[float] = []
    for record in ordered:
        duration = record.duration
        if duration is not None:
            durations.append(duration[0].total_seconds())
        if len(durations) == recent:
            break
    return EnvironmentSummary(
        repo=repo,
        environment=environment,
        live=live,
        last=ordered[0] if ordered else None,
        durations=tuple(reversed(durations)),
        success_rate=rate,
        active=sum(s.is_active for s in statuses),
    )


def sparkline(values: Sequence[float]) -> str:
    """Block characters scaled between the smallest and largest value."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low or 1.0
    last = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round((v - low) / span * last)] for v in values)
