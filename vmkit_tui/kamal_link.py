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
from collections.abc import Mapping
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
    repo: str, env: EnvironmentConfig, base: str, extra: str | None, where: str, name: str
) -> EnvironmentConfig:
    """`env` with the values of its Kamal config (file texts given). ConfigError for a value
    that cannot be read or resolved and that the user did not write by hand."""
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


def link_local(config: Config) -> Config:
    """Every environment whose `kamal_config` is a local file, with its values."""
    base_dir = config.source.parent if config.source is not None else Path.cwd()
    repos = []
    for index, repo in enumerate(config.repos):
        envs = []
        for env in repo.environments:
            path = env.kamal_config
            if path is None or not is_local_kamal_config(path):
                envs.append(env)
                continue
            where = f"repos[{index}].environments.{env.name}.kamal_config"
            file = base_dir / Path(path).expanduser()
            base = _read(file, where)
            extra = None
            if env.destination:
                extra = _read(Path(destination_file(str(file), env.destination)), where)
            envs.append(linked(repo.name, env, base, extra, where, str(file)))
        repos.append(replace(repo, environments=tuple(envs)))
    return replace(config, repos=tuple(repos))


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
    repos = []
    for index, repo in enumerate(config.repos):
        envs = []
        for env in repo.environments:
            path = env.kamal_config
            if path is None or is_local_kamal_config(path):
                envs.append(env)
                continue
            where = f"repos[{index}].environments.{env.name}.kamal_config"
            try:
                envs.append(await _remote(client, repo.name, env, path, where))
            except ConfigError as error:
                problems[(repo.name, env.name)] = str(error)
                envs.append(env)
        repos.append(replace(repo, environments=tuple(envs)))
    return replace(config, repos=tuple(repos)), problems


async def _remote(
    client: GitHubClient, repo: str, env: EnvironmentConfig, path: str, where: str
) -> EnvironmentConfig:
    from vmkit_tui.sources.github import GitHubError

    try:
        base = await client.get_file(repo, path, ref=env.branch)
        extra = None
        if base is not None and env.destination:
            extra_file = await client.get_file(
                repo, destination_file(path, env.destination), ref=env.branch
            )
            if extra_file is None:
                raise ConfigError(where, f"no destination file for {env.destination}")
            extra = extra_file.text
    except (GitHubError, ValueError) as error:
        raise ConfigError(where, f"cannot read it: {error}") from None
    if base is None:
        raise ConfigError(where, f"not found on branch {env.branch}")
    return linked(repo, env, base.text, extra, where, f"{repo}:{path}")
