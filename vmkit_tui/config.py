"""Configuration: a strictly validated TOML file.

Every mistake is reported as one line naming the key path (``repos[0].environments.production.
hosts[0]: expected user@host[:port], got "deploy@"``) so a user can fix it without reading code.
Nothing here touches the network or creates directories.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import platformdirs

from vmkit_tui.domain.models import NAME_PATTERN, REPO_PATTERN
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.text import escaped

APP_NAME = "vmkit"
CONFIG_ENV = "VMKIT_CONFIG"
DEFAULT_API_URL = "https://api.github.com"

_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HOST_SPEC = re.compile(
    r"(?:(?P<user>[^@]+)@)?(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?"
)
_WORKFLOW = re.compile(r"[A-Za-z0-9_.-]+\.ya?ml|[0-9]+")
_BRANCH = re.compile(r"(?!.*\.\.)(?!/)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])")
_IMAGE = re.compile(r"[a-z0-9.-]+(?::[0-9]+)?/[a-z0-9._-]+(?:/[a-z0-9._-]+)*")
_HEALTH_PATH = re.compile(r"/[A-Za-z0-9._~/?=&%-]*")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
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

T = TypeVar("T")


class ConfigError(Exception):
    """One clear line: where (file and key path) and what is wrong. Exit status 2. Whatever
    came from the file (keys, values, the path) is escaped: no control character gets out."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(escaped(f"{where}: {message}"))
        self.where = where


class RollbackStrategy(StrEnum):
    GITHUB = "github"  # workflow_dispatch of the deploy workflow with the old SHA
    KAMAL_SSH = "kamal-ssh"  # run Kamal over SSH on the environment's deploy host


@dataclass(frozen=True, slots=True)
class HostSpec:
    """`[user@]host[:port]`, validated; hosts end up in SSH connections and on screen. A user
    or port left out (None) comes from the SSH config, as for `ssh`: `host` may be an alias."""

    user: str | None
    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port not in (None, 22) else "")

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        """Raise ValueError with the expected form when `text` is not `[user@]host[:port]`."""
        bad = ValueError(f'expected [user@]host[:port], got "{text:.80}"')
        match = _HOST_SPEC.fullmatch(text)
        if match is None or (match["user"] is not None and not _USER.fullmatch(match["user"])):
            raise bad
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise bad
        if match["ipv6"] is not None:
            try:
                host = str(ipaddress.IPv6Address(match["ipv6"]))
            except ValueError:
                raise bad from None
        else:
            host = match["host"]
            if not _HOSTNAME.fullmatch(host):
                raise bad
        return cls(match["user"], host, port)


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
    streams: Mapping[str, str] = field(default_factory=dict)
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
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            where,
            "no such file (`vmkit-tui config init` writes an example; or try `vmkit-tui demo`)",
        ) from None
    except OSError as exc:
        raise ConfigError(where, f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, f"not UTF-8 (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, _toml_error(exc, text)) from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(where, "TOML nested too deeply (arrays or inline tables)") from None
    config = parse_config(data, source=path)
    if config.github.token is not None:
        _require_private(path)
    return config


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """tomllib puts the position inside its message; lift it to the front: 'line L, column C'."""
    message = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        reason = message[: match.start()].strip()
        return f"TOML syntax error at line {match[1]}, column {match[2]}: {reason}"
    match = re.search(r"\(at end of document\)", message)
    if match:
        line = text.count("\n") + 1
        return f"TOML syntax error at line {line} (end of document): {message[: match.start()].strip()}"
    return f"TOML syntax error: {message}"


def _require_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            str(path),
            f"holds a secret (github.token) but is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}  (or remove the token and use GH_TOKEN / `gh auth login`)",
        )


# --- validation -------------------------------------------------------------------------------


class _Table:
    """A TOML table being validated: typed getters that name the key path, unknown-key check."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path or "config", f"expected a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(
        self, key: str, kind: type[T], default: T | None = None, *, required: bool = False
    ) -> T | None:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(self.key_path(key), "required key is missing")
            return default
        value = self.data[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise ConfigError(
                self.key_path(key), f"expected {_kind_name(kind)}, got {_kind(value)}"
            )
        return value

    def text(
        self,
        key: str,
        pattern: re.Pattern[str] | None = None,
        expected: str = "",
        default: str | None = None,
        *,
        required: bool = False,
    ) -> str | None:
        value = self.get(key, str, default, required=required)
        if (
            value is not None
            and key in self.data
            and pattern is not None
            and not pattern.fullmatch(value)
        ):
            raise ConfigError(self.key_path(key), f'expected {expected}, got "{value:.80}"')
        return value

    def path_value(self, key: str, default: Path | None = None) -> Path | None:
        value = self.get(key, str)
        if value is None:
            return default
        if not value.strip() or "\x00" in value:
            raise ConfigError(self.key_path(key), f'expected a file path, got "{value:.80}"')
        return Path(value).expanduser()

    def table(self, key: str) -> _Table:
        self.seen.add(key)
        return _Table(self.data.get(key, {}), self.key_path(key))

    def items(self, key: str, parse: Callable[[str, str], T]) -> list[T]:
        """A list of strings, each parsed by `parse(text, key_path)`."""
        values = self.get(key, list, [])
        out = []
        for index, item in enumerate(values or []):
            item_path = f"{self.key_path(key)}[{index}]"
            if not isinstance(item, str):
                raise ConfigError(item_path, f"expected a string, got {_kind(item)}")
            out.append(parse(item, item_path))
        return out

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            raise ConfigError(self.key_path(unknown[0]), f"unknown key (known here: {known})")


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _kind_name(kind: type) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(kind, kind.__name__)


def _host(text: str, where: str) -> HostSpec:
    try:
        return HostSpec.parse(text)
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from None


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    root = _Table(dict(data), "")
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
        repo = _parse_repo(_Table(repo_raw, f"repos[{index}]"))
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


def _parse_ssh(table: _Table) -> SshConfig:
    """`config = ""` turns the SSH config off; any other value must be a file path."""
    if table.data.get("config") == "":
        table.seen.add("config")
        path = None
    else:
        path = table.path_value("config", SshConfig().config)
    table.finish()
    return SshConfig(config=path)


def _parse_github(table: _Table) -> GitHubConfig:
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


def _parse_ui(table: _Table) -> UiConfig:
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


def _parse_repo(table: _Table) -> RepoConfig:
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
    default_service = re.sub(r"[^a-z0-9_-]", "-", name.split("/", 1)[1].lower()).strip("-") or "app"
    for env_name in list(envs_table.data):
        env_path = envs_table.key_path(env_name)
        if not NAME_PATTERN.fullmatch(env_name):
            raise ConfigError(env_path, "environment names use letters, digits, '.', '_' and '-'")
        envs_table.seen.add(env_name)
        environments.append(
            _parse_environment(
                env_name, _Table(envs_table.data[env_name], env_path), default_service
            )
        )
    envs_table.finish()
    table.finish()
    return RepoConfig(
        name=name, image=image or f"ghcr.io/{name.lower()}", environments=tuple(environments)
    )


def _parse_environment(name: str, table: _Table, default_service: str) -> EnvironmentConfig:
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
        streams=streams,
        production_environment=production,
        transient_environment=bool(transient),
    )
