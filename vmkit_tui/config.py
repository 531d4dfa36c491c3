"""Configuration: a strictly validated TOML file.

Every mistake is reported as one line naming the key path (``repos[0].environments.production.
hosts[0]: expected [user@]host[:port], got "deploy@"``) so a user can fix it without reading code.
Nothing here touches the network or creates directories.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from vmkit_tui.config_table import ConfigError as ConfigError  # re-exported: callers import it here
from vmkit_tui.config_table import Table, toml_error
from vmkit_tui.domain.hosts import HostSpec as HostSpec  # re-exported: callers import it here
from vmkit_tui.domain.models import NAME_PATTERN, REPO_PATTERN, WORKDIR_PATTERN, ValidationError
from vmkit_tui.domain.secret import Secret

APP_NAME = "vmkit"
CONFIG_ENV = "VMKIT_CONFIG"
DEFAULT_API_URL = "https://api.github.com"

_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_WORKFLOW = re.compile(r"[A-Za-z0-9_.-]+\.ya?ml|[0-9]+")
_BRANCH = re.compile(r"(?!.*\.\.)(?!/)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])")
_IMAGE = re.compile(r"[a-z0-9.-]+(?::[0-9]+)?/[a-z0-9._-]+(?:/[a-z0-9._-]+)*")
_HEALTH_PATH = re.compile(r"/[A-Za-z0-9._~/?=&%-]*")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
_KAMAL_CONFIG = re.compile(r"(?:~|\.{1,2})?/?(?!.*//)[A-Za-z0-9._~/-]{1,400}\.ya?ml")
_STREAM_SOURCES = ("kamal-proxy", "vmkit-agent", "app")
# Textual's built-in themes (tests/tui checks this list against the installed Textual): config
# cannot import Textual, and an unknown theme must be refused here, not crash the dashboard.
# fmt: off
THEMES = (
    "ansi-dark", "ansi-light", "atom-one-dark", "atom-one-light", "catppuccin-frappe",
    "catppuccin-latte", "catppuccin-macchiato", "catppuccin-mocha", "dracula", "flexoki",
    "gruvbox", "monokai", "nord", "rose-pine", "rose-pine-dawn", "rose-pine-moon",
    "solarized-dark", "solarized-light", "textual-dark", "textual-light", "tokyo-night",
)
# fmt: on


class RollbackStrategy(StrEnum):
    GITHUB = "github"  # workflow_dispatch of the deploy workflow with the old SHA
    KAMAL_SSH = "kamal-ssh"  # run Kamal over SSH on the environment's deploy host


@dataclass(frozen=True, slots=True)
class EnvironmentConfig:
    name: str
    workflow: str = "deploy.yml"
    branch: str = "main"
    rollback: RollbackStrategy = RollbackStrategy.GITHUB
    hosts: tuple[HostSpec, ...] = ()
    deploy_host: HostSpec | None = None
    identity_file: Path | None = None
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    health_path: str = "/up"
    service: str = "app"
    destination: str | None = None
    kamal_dir: str | None = None  # the Kamal project on deploy_host (from its login dir)
    streams: Mapping[str, str] = field(default_factory=dict)
    kamal_config: str | None = None  # a Kamal config in the repo, or a local one (/, ~, ./)
    # The table as written, so values derived from `kamal_config` go through the same checks
    # and never override what the user wrote (`derive_environment`).
    written: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # How the team history's GitHub deployments mark the environment (None: named "production")
    production_environment: bool | None = None
    transient_environment: bool = False

    @property
    def is_production(self) -> bool:
        if self.production_environment is None:
            return self.name == "production"
        return self.production_environment


@dataclass(frozen=True, slots=True)
class RepoConfig:
    name: str
    image: str
    environments: tuple[EnvironmentConfig, ...]

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class GitHubConfig:
    api_url: str = DEFAULT_API_URL
    token: Secret | None = None  # only when the file holds one (then it must be 0600)
    share: bool = False  # the team history: mirror to and import from GitHub Deployments


@dataclass(frozen=True, slots=True)
class UiConfig:
    bell: bool = False  # ring the terminal bell when a watched deploy finishes
    theme: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)  # binding id → keys (App.set_keymap)


@dataclass(frozen=True, slots=True)
class SshConfig:
    """`config`: the OpenSSH client config file honoured for every host (None: none)."""

    config: Path | None = Path("~/.ssh/config")


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None
    github: GitHubConfig = GitHubConfig()
    repos: tuple[RepoConfig, ...] = ()
    history_path: Path | None = None
    data_dir: Path | None = None
    ui: UiConfig = UiConfig()
    ssh: SshConfig = SshConfig()

    def repo(self, name: str) -> RepoConfig:
        for repo in self.repos:
            if repo.name == name:
                return repo
        raise KeyError(name)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def resolve_config_path(cli_path: str | os.PathLike[str] | None) -> Path:
    """`--config`, else `$VMKIT_CONFIG`, else the platformdirs user config dir."""
    if cli_path:
        return Path(cli_path).expanduser()
    if env := os.environ.get(CONFIG_ENV):
        return Path(env).expanduser()
    return default_config_path()


def load_config(path: Path) -> Config:
    """Read and validate `path`. Raises ConfigError (one line) for anything wrong."""
    text = read_config_text(path)
    if text is None:
        raise ConfigError(
            str(path),
            "no such file (`vmkit-tui config init` writes an example; or try `vmkit-tui demo`)",
        )
    return load_config_text(text, path)


def read_config_text(path: Path) -> str | None:
    """The config file's text, None when there is no such file; ConfigError (one line) when
    it cannot be read or is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 (byte {exc.start})") from None


def load_config_text(text: str, path: Path) -> Config:
    """`text`, read from `path`, validated as `load_config` does (the token needs the file to
    be private; local Kamal configs are read)."""
    config = parse_config_text(text, path)
    if config.github.token is not None:
        _require_private(path)
    if any(
        e.kamal_config and is_local_kamal_config(e.kamal_config)
        for r in config.repos
        for e in r.environments
    ):
        from vmkit_tui.kamal_link import link_local  # reads the local Kamal configs

        config = link_local(config)
    return config


def parse_config_text(text: str, source: Path) -> Config:
    """TOML text validated, touching no file: a syntax error names `source` and its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(source), toml_error(exc, text)) from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(str(source), "TOML nested too deeply (arrays or inline tables)") from None
    return parse_config(data, source=source)


def is_local_kamal_config(path: str) -> bool:
    """A `kamal_config` naming a local file (read at load), not one in the repository."""
    return path.startswith(("/", "~", "."))


def _require_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            str(path),
            f"holds a secret (github.token) but is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}  (or remove the token and use GH_TOKEN / `gh auth login`)",
        )


def _host(text: str, where: str) -> HostSpec:
    try:
        return HostSpec.parse(text)
    except ValidationError as exc:
        raise ConfigError(where, str(exc)) from None


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    root = Table(dict(data), "")
    github = _parse_github(root.table("github"))
    paths = root.table("paths")
    history = paths.path_value("history")
    data_dir = paths.path_value("data_dir")
    paths.finish()
    ui = _parse_ui(root.table("ui"))
    ssh = _parse_ssh(root.table("ssh"))
    repos_raw = root.get("repos", list, [])
    repos = []
    names: set[str] = set()
    for index, repo_raw in enumerate(repos_raw or []):
        repo = _parse_repo(Table(repo_raw, f"repos[{index}]"))
        if repo.name in names:
            raise ConfigError(f"repos[{index}].name", f'"{repo.name}" is configured twice')
        names.add(repo.name)
        repos.append(repo)
    root.finish()
    return Config(
        source=source,
        github=github,
        repos=tuple(repos),
        history_path=history,
        data_dir=data_dir,
        ui=ui,
        ssh=ssh,
    )


def _parse_ssh(table: Table) -> SshConfig:
    """`config = ""` turns the SSH config off; any other value must be a file path."""
    if table.data.get("config") == "":
        table.seen.add("config")
        path = None
    else:
        path = table.path_value("config", SshConfig().config)
    table.finish()
    return SshConfig(config=path)


def _parse_github(table: Table) -> GitHubConfig:
    api_url = table.text(
        "api_url", _URL, "an http(s) URL such as https://HOST/api/v3", DEFAULT_API_URL
    )
    if api_url is not None and (problem := _url_problem(api_url)):
        raise ConfigError(table.key_path("api_url"), f'{problem}, got "{api_url:.80}"')
    token = table.get("token", str)
    if token is not None and not token.strip():
        raise ConfigError(
            table.key_path("token"), "is empty (remove it to use GH_TOKEN or `gh auth token`)"
        )
    try:
        secret = Secret(token) if token else None
    except ValueError:  # never quote it: it may be a real token with a stray character
        raise ConfigError(
            table.key_path("token"),
            "a token is 1-255 printable ASCII characters, without spaces or line breaks",
        ) from None
    share = table.get("share", bool, False)
    table.finish()
    return GitHubConfig(
        api_url=(api_url or DEFAULT_API_URL).rstrip("/"), token=secret, share=bool(share)
    )


def _url_problem(url: str) -> str:
    """What is wrong with an api_url the pattern let through (its port or host), or ""."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (it raises for a port out of range)
    except ValueError:
        return "the port must be 1-65535"
    if parts.port == 0:
        return "the port must be 1-65535"
    host = parts.hostname or ""
    if not _HOSTNAME.fullmatch(host):
        return "expected a host name (at most 253 characters, labels of at most 63)"
    return ""


def _parse_ui(table: Table) -> UiConfig:
    bell = table.get("bell", bool, False)
    theme = table.text("theme", re.compile(r"[a-z0-9-]{1,40}"), "a theme name such as textual-dark")
    if theme is not None and theme not in THEMES:
        raise ConfigError(
            table.key_path("theme"), f'unknown theme "{theme}" (known: {", ".join(THEMES)})'
        )
    keys_table = table.table("keys")
    keys: dict[str, str] = {}
    for binding_id in list(keys_table.data):
        value = keys_table.text(
            binding_id, re.compile(r"[A-Za-z0-9_+,. -]{1,60}"), "keys such as ctrl+r or R"
        )
        if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,40}", binding_id):
            raise ConfigError(
                keys_table.key_path(binding_id), "expected a binding id such as deploys.rollback"
            )
        keys[binding_id] = value or ""
    keys_table.finish()
    table.finish()
    return UiConfig(bell=bool(bell), theme=theme, keys=keys)


def _parse_repo(table: Table) -> RepoConfig:
    name = table.text("name", REPO_PATTERN, "owner/name", required=True)
    assert name is not None
    image = table.text(
        "image", _IMAGE, "an image such as ghcr.io/owner/name", f"ghcr.io/{name.lower()}"
    )
    envs_table = table.table("environments")
    if not envs_table.data:
        raise ConfigError(
            envs_table.path, "define at least one environment, e.g. [repos.environments.production]"
        )
    environments = []
    default_service = _default_service(name)
    for env_name in list(envs_table.data):
        env_path = envs_table.key_path(env_name)
        if not NAME_PATTERN.fullmatch(env_name):
            raise ConfigError(env_path, "environment names use letters, digits, '.', '_' and '-'")
        envs_table.seen.add(env_name)
        environments.append(
            _parse_environment(
                env_name, Table(envs_table.data[env_name], env_path), default_service
            )
        )
    envs_table.finish()
    table.finish()
    return RepoConfig(
        name=name, image=image or f"ghcr.io/{name.lower()}", environments=tuple(environments)
    )


def _default_service(repo: str) -> str:
    """The Kamal service an environment of `repo` (owner/name) has unless it says otherwise."""
    return re.sub(r"[^a-z0-9_-]", "-", repo.split("/", 1)[1].lower()).strip("-") or "app"


def _parse_environment(name: str, table: Table, default_service: str) -> EnvironmentConfig:
    workflow = table.text(
        "workflow", _WORKFLOW, "a workflow file name such as deploy.yml", "deploy.yml"
    )
    branch = table.text("branch", _BRANCH, "a branch name", "main")
    strategy_text = table.text("rollback", None, "", RollbackStrategy.GITHUB.value) or ""
    try:
        strategy = RollbackStrategy(strategy_text)
    except ValueError:
        raise ConfigError(
            table.key_path("rollback"),
            f'expected "github" or "kamal-ssh", got "{strategy_text:.40}"',
        ) from None
    hosts = table.items("hosts", _host)
    deploy_host_text = table.get("deploy_host", str)
    deploy_host = (
        _host(deploy_host_text, table.key_path("deploy_host")) if deploy_host_text else None
    )
    if strategy is RollbackStrategy.KAMAL_SSH and deploy_host is None:
        raise ConfigError(
            table.key_path("deploy_host"),
            'required when rollback = "kamal-ssh" (the host that runs kamal)',
        )
    identity = table.path_value("identity_file")
    known_hosts = table.path_value("known_hosts", Path("~/.ssh/known_hosts").expanduser())
    health_path = table.text("health_path", _HEALTH_PATH, "a URL path such as /up", "/up")
    service = table.text(
        "service", re.compile(r"[a-z0-9][a-z0-9_-]{0,62}"), "a Kamal service name", default_service
    )
    destination = table.text("destination", NAME_PATTERN, "a Kamal destination name")
    kamal_dir = table.text(
        "kamal_dir", WORKDIR_PATTERN, "a directory on deploy_host such as apps/storefront"
    )
    kamal_config = table.text("kamal_config", _KAMAL_CONFIG, "a path such as config/deploy.yml")
    streams_table = table.table("streams")
    streams: dict[str, str] = {}
    for source in list(streams_table.data):
        if source not in _STREAM_SOURCES:
            raise ConfigError(
                streams_table.key_path(source),
                f"unknown stream (known: {', '.join(_STREAM_SOURCES)})",
            )
        command = streams_table.text(source)
        if not command or not command.strip() or "\n" in command:
            raise ConfigError(streams_table.key_path(source), "expected a one-line shell command")
        streams[source] = command
    streams_table.finish()
    production = table.get("production_environment", bool)
    transient = table.get("transient_environment", bool, False)
    table.finish()
    return EnvironmentConfig(
        name=name,
        workflow=workflow or "deploy.yml",
        branch=branch or "main",
        rollback=strategy,
        hosts=tuple(hosts),
        deploy_host=deploy_host,
        identity_file=identity,
        known_hosts=known_hosts or Path("~/.ssh/known_hosts").expanduser(),
        health_path=health_path or "/up",
        service=service or default_service,
        destination=destination,
        kamal_dir=kamal_dir,
        streams=streams,
        kamal_config=kamal_config,
        written=dict(table.data),
        production_environment=production,
        transient_environment=bool(transient),
    )


def derive_environment(
    repo: str, env: EnvironmentConfig, derived: Mapping[str, Any], where: str
) -> EnvironmentConfig:
    """`env` with values derived from its Kamal config (TOML-shaped: hosts, service, …) where
    the user wrote none, checked by the same rules; ConfigError names `where` and the key."""
    table = Table({**derived, **env.written}, "")
    try:
        derived_env = _parse_environment(env.name, table, _default_service(repo))
    except ConfigError as error:
        raise ConfigError(where, f"derived {error}") from None
    return replace(derived_env, written=env.written)  # a later refresh may change the rest
