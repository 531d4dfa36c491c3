"""DeployService: the one place that decides about deploys.

The TUI, the CLI and the MCP server call this and never talk to GitHub, SSH or the history file
themselves. It owns the history (through its async facade, so no event loop ever blocks on the
file lock), the log spools, deploy tracking, and publishes what changes as `updates`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vmkit_tui.config import Config
from vmkit_tui.history import AsyncHistory
from vmkit_tui.models import DeployRecord, utcnow
from vmkit_tui.overview import EnvironmentSummary, newest_first, summarize
from vmkit_tui.updates import Broadcaster

EnvKey = tuple[str, str]  # (repo, environment)


@dataclass(slots=True)
class Overview:
    """Every configured environment's deploys, newest first (what the TUI shows)."""

    repos: list[str] = field(default_factory=list)
    environments: dict[str, list[str]] = field(default_factory=dict)
    deploys: dict[EnvKey, list[DeployRecord]] = field(default_factory=dict)

    def summary(self, repo: str, environment: str) -> EnvironmentSummary:
        return summarize(repo, environment, self.deploys.get((repo, environment), []))

    def summaries(self, repo: str) -> list[EnvironmentSummary]:
        return [self.summary(repo, env) for env in self.environments.get(repo, [])]

    def upsert(self, record: DeployRecord) -> None:
        key = (record.deploy.repo, record.deploy.environment)
        rows = [r for r in self.deploys.get(key, []) if r.id != record.id]
        rows.append(record)
        self.deploys[key] = newest_first(rows)

    def remove(self, deploy_ids: Sequence[str]) -> None:
        gone = set(deploy_ids)
        for key, rows in self.deploys.items():
            self.deploys[key] = [r for r in rows if r.id not in gone]

    def find(self, deploy_id: str) -> DeployRecord | None:
        for rows in self.deploys.values():
            for record in rows:
                if record.id == deploy_id:
                    return record
        return None


class DeployService:
    def __init__(
        self,
        config: Config,
        history: AsyncHistory,
        data_dir: Path,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.history = history
        self.data_dir = data_dir
        self.now = now
        self.updates = Broadcaster()

    def log_path(self, deploy_id: str) -> Path:
        return self.data_dir / "logs" / f"{deploy_id}.log"

    async def overview(self) -> Overview:
        """One read of the history, grouped by the configured repos and environments.

        Environments that are in the history but no longer configured are left out of the
        navigation, but their records stay in the file."""
        records = await self.history.records()
        overview = Overview()
        configured: set[EnvKey] = set()
        for repo in self.config.repos:
            overview.repos.append(repo.name)
            overview.environments[repo.name] = [env.name for env in repo.environments]
            for env in repo.environments:
                configured.add((repo.name, env.name))
                overview.deploys[(repo.name, env.name)] = []
        for record in records:
            key = (record.deploy.repo, record.deploy.environment)
            if key in configured:
                overview.deploys[key].append(record)
        for key, rows in overview.deploys.items():
            overview.deploys[key] = newest_first(rows)
        return overview

    async def record(self, deploy_id: str) -> DeployRecord:
        return await self.history.record(deploy_id)
