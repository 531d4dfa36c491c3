"""What every frontend command needs before it acts: checking the names and ids it was given
against the configuration and the history, and reading a window of a deploy's log spool.

Shared by the CLI and the MCP server; a UsageError's message is one line, fit to show as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkit_tui.config import Config, EnvironmentConfig
from vmkit_tui.domain.models import DEPLOY_ID_PATTERN, DeployRecord, is_sha_prefix
from vmkit_tui.frontends.present import clean
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import UnknownDeploy
from vmkit_tui.store.spool import LogRecord, SpoolReader

LOG_BLOCK = 4096  # spool lines read at a time
# The sources a deploy's log lines come from (the spool's `source` field), as `--source` and
# get_deploy_logs name them: GitHub job logs, Kamal's console, the VMs' streams.
LOG_SOURCES = ("github", "kamal", "kamal-proxy", "vmkit-agent", "app")


class UsageError(Exception):
    """Bad usage or config (the CLI exits with status 2, the MCP server answers a tool error);
    `str()` is one line for the user."""


def check_environment(config: Config, repo: str, environment: str) -> EnvironmentConfig:
    """The configured environment, or a UsageError naming the configured ones."""
    try:
        return config.repo(repo).environment(environment)
    except KeyError:
        known = "; ".join(
            f"{r.name}: {', '.join(e.name for e in r.environments)}" for r in config.repos
        )
        raise UsageError(
            f"{clean(repo)} {clean(environment)} is not in the configuration "
            f"({known or 'no repos configured'})."
        ) from None


def check_deploy_id(deploy_id: str) -> str:
    if not DEPLOY_ID_PATTERN.fullmatch(deploy_id):
        raise UsageError(f"Not a deploy id (12 lowercase hex characters): {clean(deploy_id)[:40]}")
    return deploy_id


def check_target(target: str | None) -> str | None:
    """A rollback target's form: a deploy id (12 hex) or a commit SHA, full or a prefix of 7+
    hex (None: the default target). The actions resolve it against the history."""
    if target is None or DEPLOY_ID_PATTERN.fullmatch(target) or is_sha_prefix(target):
        return target
    raise UsageError(
        "A target is a deploy id (12 hex characters) or a commit SHA (the short 7-character "
        f"one or more of it, up to all 40 lowercase hex characters), not {clean(target)[:60]!r}."
    )


def check_source(source: str | None) -> str | None:
    """A log source to filter on (None: all), or a UsageError listing the known ones."""
    if source is None or source in LOG_SOURCES:
        return source
    raise UsageError(f"Unknown log source {clean(source)[:40]!r}: one of {', '.join(LOG_SOURCES)}.")


async def find_deploy(
    service: DeployService, deploy_id: str, where: tuple[str, str] | None = None
) -> DeployRecord:
    """The deploy, which must be in the history (and on `where`, if given)."""
    check_deploy_id(deploy_id)
    try:
        record = await service.record(deploy_id)
    except UnknownDeploy:
        raise UsageError(f"No deploy {deploy_id} in the history.") from None
    found = (record.deploy.repo, record.deploy.environment)
    if where is not None and found != where:
        raise UsageError(
            f"Deploy {deploy_id} is on {found[0]} {found[1]}, not {where[0]} {where[1]}."
        )
    return record


@dataclass(frozen=True, slots=True)
class LogWindow:
    """Some lines of a deploy's spool with their indexes; `total`: lines in the spool;
    `next_start`: where the following window starts (None: this one reached the end)."""

    total: int
    lines: list[tuple[int, LogRecord]]
    next_start: int | None


def log_window(
    path: Path, *, last: int | None, start: int | None, count: int, source: str | None
) -> LogWindow:
    """Lines [start, start+count) of the spool, or else its last `last` lines; with `source`,
    only that source's lines (the last ones of it, or those inside the window); an unknown
    source is a UsageError. Blocking."""
    check_source(source)
    with SpoolReader(path) as reader:
        total = len(reader)
        if start is not None:
            stop = min(start + count, total)
            picked = [
                (index, record)
                for index, record in zip(range(start, stop), reader.lines(start, stop), strict=True)
                if source is None or record.source == source
            ]
            return LogWindow(total, picked, stop if stop < total else None)
        wanted = last or 0
        found: list[tuple[int, LogRecord]] = []
        high = total
        while high > 0 and len(found) < wanted:
            low = max(0, high - LOG_BLOCK)
            block = reader.lines(low, high)
            for offset in range(len(block) - 1, -1, -1):
                if source is None or block[offset].source == source:
                    found.append((low + offset, block[offset]))
                    if len(found) == wanted:
                        break
            high = low
        found.reverse()
        return LogWindow(total, found, None)
