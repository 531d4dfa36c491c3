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
from vmkit_tui.actions.errors import ActionRefused
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
    ValidationError,
    validate_sha,
)
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.sources.github import Commit, GitHubClient, ImageCheck, ImageState

__all__ = ["gather_preflight", "resolve_target"]


async def gather_preflight(
    github: GitHubClient | None,
    now: Callable[[], datetime],
    repo_config: RepoConfig,
    env: EnvironmentConfig,
    records: Sequence[DeployRecord],
    target: str | None,
) -> Preflight:
    """The preflight of rolling `env` back to `target` (a deploy id, a full SHA, or None for
    the last succeeded deploy before the live one), given the environment's `records`."""
    live = live_deploy(records)
    chosen, sha = resolve_target(repo_config.name, env.name, records, live, target)
    live_sha = live.deploy.sha if live is not None else None
    commit, image, migrations = await asyncio.gather(
        _commit(github, repo_config.name, sha),
        _image(github, repo_config.image, sha),
        _migrations(github, repo_config.name, env.name, sha, live_sha),
    )
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
        active=next((r for r in newest_first(records) if r.status.is_active), None),
    )


def resolve_target(
    repo: str,
    environment: str,
    records: Sequence[DeployRecord],
    live: DeployRecord | None,
    target: str | None,
) -> tuple[DeployRecord | None, str]:
    """The target as (its known deploy or None, its SHA)."""
    if target and DEPLOY_ID_PATTERN.fullmatch(target):
        chosen = next((r for r in records if r.id == target), None)
        if chosen is None:
            raise ActionRefused(f"{repo} {environment} has no deploy {target}.")
        if live is None or chosen.id != live.id:
            return chosen, chosen.deploy.sha
    elif target:
        try:
            sha = validate_sha(target)
        except ValidationError as error:
            raise ActionRefused(f"Roll back to what? {error}") from None
        same = [r for r in newest_first(records) if r.deploy.sha == sha]
        good = [r for r in same if r.status is Status.SUCCEEDED]
        return next(iter(good or same), None), sha
    chosen = default_rollback_target(records)
    if chosen is None:
        raise ActionRefused(
            f"{repo} {environment} has no succeeded deploy before the live one to roll back "
            "to: name a deploy or a full commit SHA."
        )
    return chosen, chosen.deploy.sha


async def _commit(github: GitHubClient | None, repo: str, sha: str) -> Commit | str | None:
    """The commit, None if GitHub does not have it, or why it could not be checked."""
    if github is None:
        return "no GitHub token"
    return await checked(github.get_commit(repo, sha))


async def _image(github: GitHubClient | None, image: str, sha: str) -> ImageCheck:
    if github is None:
        return ImageCheck(ImageState.CANNOT_CHECK, "no GitHub token")
    found = await checked(github.image_tags_present(image, sha))
    return ImageCheck(ImageState.CANNOT_CHECK, found) if isinstance(found, str) else found


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
