"""Gathering a rollback's preflight: which deploy and SHA the target names, and what GitHub says
about it (does the commit exist, is its image still in GHCR, which migrations lie between it and
the live version). `preflight.Preflight` turns these facts into refusals and warnings.

A check that cannot be made (no token, GitHub failing) is a "cannot check" in the result, never
an error; only a target that names nothing raises `ActionRefused`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from vmkit_tui.actions.base import checked
from vmkit_tui.actions.errors import ActionRefused, UnknownTarget
from vmkit_tui.actions.preflight import (
    MigrationCheck,
    Preflight,
    TargetInfo,
    default_rollback_target,
    live_deploy,
)
from vmkit_tui.config import EnvironmentConfig, RepoConfig
from vmkit_tui.domain.migrations import migration_files
from vmkit_tui.domain.models import (
    DEPLOY_ID_PATTERN,
    DeployRecord,
    Status,
    is_sha,
    is_sha_prefix,
)
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.sources.github import Commit, GitHubClient, ImageCheck, ImageState
from vmkit_tui.tracking.eligibility import EligibilityRefresher

__all__ = ["gather_preflight", "resolve_sha", "resolve_target"]

SHOWN_CANDIDATES = 5  # commits listed when a SHA prefix is ambiguous
# the environment left the refresher's config while this check ran: nothing was listed for it
NOT_LISTED = ImageCheck(ImageState.CANNOT_CHECK, "the environment is no longer configured")


async def gather_preflight(
    github: GitHubClient | None,
    now: Callable[[], datetime],
    repo_config: RepoConfig,
    env: EnvironmentConfig,
    records: Sequence[DeployRecord],
    target: str | None,
    refresher: EligibilityRefresher,
) -> Preflight:
    """The preflight of rolling `env` back to `target` (see `resolve_target`), given the
    environment's `records`; `refresher`: whose facts (refreshed now for this environment:
    its hosts' containers and the one GHCR listing of this check) say whether the target is
    still kept on the hosts and in GHCR, the same facts the rows show."""
    live = live_deploy(records)
    chosen, sha = resolve_target(repo_config.name, env.name, records, live, target)
    live_sha = live.deploy.sha if live is not None else None
    commit, migrations, _ = await asyncio.gather(
        _commit(github, repo_config.name, sha),
        _migrations(github, repo_config.name, env.name, sha, live_sha),
        refresher.refresh(repo_config.name, [env.name]),
    )
    facts = refresher.facts.get((repo_config.name, env.name))
    image = ImageCheck.of(facts.registry, sha) if facts else NOT_LISTED
    if isinstance(commit, str):
        found: bool | None = None
        message, problem = chosen.title if chosen else "", commit
    else:
        found, problem = commit is not None, ""
        first = commit.message.splitlines()[0] if commit and commit.message else ""
        message = first or (chosen.title if chosen else "")
    return Preflight(
        repo=repo_config.name,
        environment=env.name,
        strategy=env.rollback,
        image=repo_config.image,
        target=TargetInfo(sha, chosen, message, found, problem),
        live=live,
        image_check=image,
        migrations=migrations,
        checked_at=now(),
        eligibility=refresher.of(repo_config.name, env.name, sha),
        active=next((r for r in newest_first(records) if r.status.is_active), None),
    )


def resolve_target(
    repo: str,
    environment: str,
    records: Sequence[DeployRecord],
    live: DeployRecord | None,
    target: str | None,
) -> tuple[DeployRecord | None, str]:
    """The target as (its known deploy or None, its SHA). `target`: None (the default target);
    a deploy id of this environment (12 hex: an id first, so a 12-hex input that is both an id
    and a SHA prefix names the deploy; the live deploy's id means the default); else a commit
    SHA, full or any unique prefix of 7+ hex among the environment's deploys."""
    if target and DEPLOY_ID_PATTERN.fullmatch(target):
        known = next((r for r in records if r.id == target), None)
        if known is not None:
            if live is None or known.id != live.id:
                return known, known.deploy.sha
            target = None
    if target:
        sha = resolve_sha(repo, environment, records, target)
        same = [r for r in newest_first(records) if r.deploy.sha == sha]
        good = [r for r in same if r.status is Status.SUCCEEDED]
        return next(iter(good or same), None), sha
    chosen = default_rollback_target(records)
    if chosen is None:
        raise ActionRefused(
            f"{repo} {environment} has no succeeded deploy older than the live version's first "
            "deploy to roll back to (a rollback never goes forward unless asked): name a deploy "
            "or a commit SHA."
        )
    return chosen, chosen.deploy.sha


def resolve_sha(repo: str, environment: str, records: Sequence[DeployRecord], text: str) -> str:
    """The full SHA `text` names: itself if full (a commit beyond the history), else the one
    SHA among the environment's deploys starting with it. Raises `UnknownTarget` for
    malformed input, no match, or several matches (listing them)."""
    if is_sha(text):
        return text
    if not is_sha_prefix(text):
        raise UnknownTarget(
            f"Not a deploy id (12 hex) or a commit SHA (7 to 40 lowercase hex): {text!r:.60}."
        )
    shas = sorted({r.deploy.sha for r in records if r.deploy.sha.startswith(text)})
    if not shas:
        raise UnknownTarget(
            f"No deploy of {repo} {environment} in the history is of a commit starting with "
            f"{text}: give the full 40-hex SHA for a commit beyond the history."
        )
    if len(shas) > 1:
        size = next(n for n in range(len(text) + 1, 41) if len({s[:n] for s in shas}) == len(shas))
        shown = ", ".join(sha[:size] for sha in shas[:SHOWN_CANDIDATES])
        more = f" and {len(shas) - SHOWN_CANDIDATES} more" if len(shas) > SHOWN_CANDIDATES else ""
        raise UnknownTarget(
            f"{text} is the start of {len(shas)} commits deployed on {repo} {environment} "
            f"({shown}{more}): give more of the SHA."
        )
    return shas[0]


async def _commit(github: GitHubClient | None, repo: str, sha: str) -> Commit | str | None:
    """The commit, None if GitHub does not have it, or why it could not be checked."""
    if github is None:
        return "no GitHub token"
    return await checked(github.get_commit(repo, sha))


async def _migrations(
    github: GitHubClient | None, repo: str, environment: str, sha: str, live_sha: str | None
) -> MigrationCheck:
    if live_sha is None:
        return MigrationCheck(
            cannot_check=f"no deploy of {environment} in the history succeeded, so the "
            "live version is unknown"
        )
    if live_sha == sha:
        return MigrationCheck(compared="identical")
    if github is None:
        return MigrationCheck(cannot_check="no GitHub token")
    found = await checked(github.compare(repo, sha, live_sha))
    if isinstance(found, str):
        return MigrationCheck(cannot_check=f"GitHub's compare failed: {found}")
    return MigrationCheck(
        files=tuple(migration_files(found.files)),
        compared=found.status,
        truncated=found.files_truncated,
    )
