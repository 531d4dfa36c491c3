"""Environments that point at a Kamal config (`kamal_config = "config/deploy.yml"`, with
`destination`) instead of listing hosts: hosts, service, health path and SSH key come from it;
whatever the user wrote by hand wins, and the derived values pass the same checks as written
ones (`config.derive_environment`).

A path starting with `/`, `~` or `.` is a local file, read when the config is loaded (a bad or
unresolvable value is a config error: exit 2, naming the key path). Any other path is a file in
the repository, on the environment's branch: the service reads it through the contents API
when it starts and again every `REFRESH_S` (a conditional GET: free while unchanged), and a
problem with it is reported as that environment's health, keeping the written values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmkit_tui.config import (
    Config,
    ConfigError,
    EnvironmentConfig,
    HostSpec,
    derive_environment,
    is_local_kamal_config,
)
from vmkit_tui.sources.kamal_config import (
    KamalConfigError,
    KamalSettings,
    destination_file,
    read_kamal_config,
)

if TYPE_CHECKING:
    from vmkit_tui.sources.github import GitHubClient

REFRESH_S = 300.0
# Which written key stands in for a Kamal value that could not be resolved.
_COVERS = (
    ("servers", "hosts"),
    ("ssh.user", "hosts"),
    ("ssh.port", "hosts"),
    ("ssh.keys", "identity_file"),
    ("service", "service"),
    ("proxy", "health_path"),
)


def host_specs(settings: KamalSettings) -> list[HostSpec]:
    """Each host as SSH will reach it: the entry's own user/port, else Kamal's ssh ones."""
    specs = []
    for host in settings.hosts:
        port = host.port or (settings.ssh.port if settings.ssh.port != 22 else None)
        specs.append(HostSpec(host.user or settings.ssh.user, host.host, port))
    return specs


def derived_values(settings: KamalSettings) -> dict[str, Any]:
    """What the Kamal config says, as config keys (TOML-shaped)."""
    values: dict[str, Any] = {
        "hosts": [str(spec) for spec in host_specs(settings)],
        "health_path": settings.health_path,
    }
    if settings.service:
        values["service"] = settings.service
    if settings.ssh.keys:
        values["identity_file"] = settings.ssh.keys[0]
    return values


def linked(
    repo: str, env: EnvironmentConfig, texts: Sequence[str], where: str, name: str
) -> EnvironmentConfig:
    """`env` with the values of its Kamal config (the texts of `_files`). ConfigError for a
    value that cannot be read or resolved and that the user did not write by hand."""
    base, extra = texts[0], (texts[1] if len(texts) > 1 else None)
    try:
        settings = read_kamal_config(
            base, extra, destination=env.destination, environ=os.environ, base_name=name
        )
    except KamalConfigError as error:
        raise ConfigError(where, str(error)) from None
    for line in (*settings.unresolved, *settings.problems):
        key = line.split(": ", 1)[0]
        for prefix, written in _COVERS:
            if (key == prefix or key.startswith((prefix + ".", prefix + "["))) and (
                written not in env.written
            ):
                raise ConfigError(where, f"{line} (or write `{written}` by hand)")
    return derive_environment(repo, env, derived_values(settings), where)


def _linking(config: Config, *, local: bool) -> Iterator[tuple[str, EnvironmentConfig, str, str]]:
    """(repo, environment, its `kamal_config`, the key path problems name) for each
    environment whose Kamal config is a local file (`local`) or one in its repository."""
    for index, repo in enumerate(config.repos):
        for env in repo.environments:
            path = env.kamal_config
            if path is not None and is_local_kamal_config(path) == local:
                yield repo.name, env, path, f"repos[{index}].environments.{env.name}.kamal_config"


def _files(path: str, env: EnvironmentConfig) -> tuple[str, ...]:
    """The files Kamal reads for `env`: the base config, then its destination's file."""
    return (path, destination_file(path, env.destination)) if env.destination else (path,)


def _with(config: Config, linked_envs: Mapping[tuple[str, str], EnvironmentConfig]) -> Config:
    """`config` with the linked environments in place of the written ones."""
    repos = tuple(
        replace(
            repo,
            environments=tuple(linked_envs.get((repo.name, e.name), e) for e in repo.environments),
        )
        for repo in config.repos
    )
    return replace(config, repos=repos)


def link_local(config: Config) -> Config:
    """Every environment whose `kamal_config` is a local file, with its values."""
    base_dir = config.source.parent if config.source is not None else Path.cwd()
    done = {}
    for repo, env, path, where in _linking(config, local=True):
        file = str(base_dir / Path(path).expanduser())
        texts = [_read(Path(name), where) for name in _files(file, env)]
        done[(repo, env.name)] = linked(repo, env, texts, where, file)
    return _with(config, done)


def _read(path: Path, where: str) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ConfigError(where, f"cannot read {path}: {why}") from None


async def link_remote(
    config: Config, client: GitHubClient
) -> tuple[Config, Mapping[tuple[str, str], str]]:
    """Every environment whose `kamal_config` is in its repository, with its values; and a
    one-line problem per environment whose file could not be used (it keeps its values)."""
    problems: dict[tuple[str, str], str] = {}
    done = {}
    for repo, env, path, where in _linking(config, local=False):
        try:
            texts = [await _fetch(client, repo, env, name, where) for name in _files(path, env)]
            done[(repo, env.name)] = linked(repo, env, texts, where, f"{repo}:{path}")
        except ConfigError as error:
            problems[(repo, env.name)] = str(error)
    return _with(config, done), problems


async def _fetch(
    client: GitHubClient, repo: str, env: EnvironmentConfig, path: str, where: str
) -> str:
    from vmkit_tui.sources.github import GitHubError

    try:
        found = await client.get_file(repo, path, ref=env.branch)
    except (GitHubError, ValueError) as error:
        raise ConfigError(where, f"cannot read {path}: {error}") from None
    if found is None:
        raise ConfigError(where, f"{path} not found on branch {env.branch}")
    return found.text
