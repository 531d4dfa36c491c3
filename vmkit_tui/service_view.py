"""What the service keeps for its frontends: the cached `Overview` of every environment's
deploys, and the update broadcaster that remembers each source's health for late subscribers
(and tells the team history which records changed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmkit_tui.config import Config
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.overview import EnvironmentSummary, newest_first, summarize
from vmkit_tui.domain.updates import Broadcaster, DeployChanged, SourceHealth, Update

if TYPE_CHECKING:
    from vmkit_tui.tracking.team import TeamShare

__all__ = ["EnvKey", "Overview", "ServiceUpdates"]

EnvKey = tuple[str, str]  # (repo, environment)
HealthKey = tuple[str, str, str]  # (source key, repo, environment)


@dataclass(slots=True)
class Overview:
    """Every configured environment's deploys, newest first (what the TUI shows). `partial`:
    only one environment's deploys are in (`DeployService.preview`), the rest of the history
    is still being read and checked."""

    repos: list[str] = field(default_factory=list)
    environments: dict[str, list[str]] = field(default_factory=dict)
    deploys: dict[EnvKey, list[DeployRecord]] = field(default_factory=dict)
    _by_id: dict[str, DeployRecord] = field(default_factory=dict)  # deploy id → its record
    partial: bool = False  # only the selected environment read so far (the rest follows)
    # Each environment's summary, until its deploys change: the dashboard asks for every
    # environment's summary whenever one of them changes.
    _summaries: dict[EnvKey, EnvironmentSummary] = field(default_factory=dict)

    @classmethod
    def configured(cls, config: Config) -> Overview:
        """The configured repos and environments, with no deploys yet."""
        overview = cls()
        for repo in config.repos:
            overview.repos.append(repo.name)
            overview.environments[repo.name] = [env.name for env in repo.environments]
            for env in repo.environments:
                overview.deploys[(repo.name, env.name)] = []
        return overview

    def summary(self, repo: str, environment: str) -> EnvironmentSummary:
        key = (repo, environment)
        found = self._summaries.get(key)
        if found is None:
            found = self._summaries[key] = summarize(repo, environment, self.deploys.get(key, []))
        return found

    def summaries(self, repo: str) -> list[EnvironmentSummary]:
        return [self.summary(repo, env) for env in self.environments.get(repo, [])]

    def upsert(self, record: DeployRecord) -> None:
        key = (record.deploy.repo, record.deploy.environment)
        rows = self.deploys.get(key, [])
        if record.id in self._by_id:
            rows = [
                record if r.id == record.id else r for r in rows
            ]  # order unchanged: same identity
        else:
            rows = newest_first([*rows, record])
        self.deploys[key] = rows
        self._by_id[record.id] = record
        self._summaries.pop(key, None)

    def remove(self, deploy_ids: Sequence[str]) -> None:
        gone = set(deploy_ids)
        for key, rows in self.deploys.items():
            kept = [r for r in rows if r.id not in gone]
            if len(kept) != len(rows):
                self.deploys[key] = kept
                self._summaries.pop(key, None)
        for deploy_id in gone:
            self._by_id.pop(deploy_id, None)

    def find(self, deploy_id: str) -> DeployRecord | None:
        return self._by_id.get(deploy_id)


class ServiceUpdates(Broadcaster):
    """The broadcaster, remembering each source's latest health for late subscribers."""

    def __init__(self) -> None:
        super().__init__()
        self.health: dict[HealthKey, SourceHealth] = {}
        self.team: TeamShare | None = None

    def publish(self, update: Update) -> None:
        if isinstance(update, SourceHealth):
            self.health[(update.key, update.repo, update.environment)] = update
        elif self.team is not None and isinstance(update, DeployChanged):
            self.team.noticed(update.record)  # a fact to share: its outbox is looked at
        super().publish(update)
