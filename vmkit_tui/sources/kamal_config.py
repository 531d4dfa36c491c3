"""What a Kamal config (`config/deploy.yml`, merged with `config/deploy.<destination>.yml`)
says about where and how an app runs, read without running Kamal.

Kamal renders its config files with ERB before parsing them, so they may hold Ruby. We never
evaluate any: a `<%= %>` tag is resolved only when it is a plain lookup in the process
environment (`ENV["X"]`, `ENV['X']`, `ENV.fetch("X")`, `ENV.fetch("X", "default")`) or a
string literal; every other tag, and every lookup of an unset variable, leaves the values it
touches unresolved, and `KamalSettings.unresolved` names each by its key path. YAML is read
with `yaml.safe_load` only.

The derivation follows Kamal 2's own rules (checked against the real `kamal config` in the
tests): servers as a list are role `web`; as a hash, each role holds a list of hosts or a table
with `hosts`, where a host may carry tags (`host: tag` or `host: [tags]`); roles are taken in
sorted order and every host once; the primary host is the first host of `primary_role` (default
`web`); the repository is `registry.server/image`; ssh defaults to user `root`, port 22; the
health path is `proxy.healthcheck.path` (the role's `proxy` over the root one), else `/up`
(kamal-proxy's default); `retain_containers` defaults to 5. A destination file is deep-merged
over the base file: tables merge key by key, anything else is replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from vmkit_tui.domain.hosts import HostSpec
from vmkit_tui.domain.models import NAME_PATTERN, ValidationError

DEFAULT_HEALTH_PATH = "/up"
DEFAULT_RETAIN = 5
_TAG = re.compile(r"<%(?P<kind>[=#-]?)(?P<body>.*?)-?%>", re.DOTALL)
_ENV = re.compile(
    r"""ENV\s*(?:\[\s*(?P<q1>["'])(?P<k1>[A-Za-z_][A-Za-z0-9_]*)(?P=q1)\s*\]"""
    r"""|\.fetch\(\s*(?P<q2>["'])(?P<k2>[A-Za-z_][A-Za-z0-9_]*)(?P=q2)\s*"""
    r"""(?:,\s*(?P<q3>["'])(?P<default>[^"'\\]*)(?P=q3)\s*)?\))"""
)
_LITERAL = re.compile(r"""(?P<q>["'])(?P<text>[^"'\\]*)(?P=q)""")
_MARK = "__vmkit_unresolved_{}__"
_MARKS = re.compile(r"__vmkit_unresolved_(\d+)__")


def destination_file(base: str, destination: str) -> str:
    """The destination file Kamal merges over `base`: its extension replaced by
    `.<destination>.yml` (Kamal reads `.yml`, even beside a `deploy.yaml`)."""
    return f"{_stem(base)}.{destination}.yml"


def destination_of(base: str, path: str) -> str | None:
    """The destination whose file `path` is (`destination_file`'s inverse), else None."""
    stem = _stem(base) + "."
    if not path.startswith(stem) or not path.endswith(".yml"):
        return None
    name = path[len(stem) : -len(".yml")]
    return name if NAME_PATTERN.fullmatch(name) else None


def _stem(path: str) -> str:
    """`path` without its last extension (as Ruby's `sub_ext` sees it)."""
    head, slash, name = path.rpartition("/")
    dot = name.rfind(".")
    return head + slash + (name[:dot] if dot > 0 else name)


class KamalConfigError(Exception):
    """One line: which file or key path, and what is wrong with it."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, slots=True)
class KamalHost:
    """One server entry: `host` as written (Kamal's identity for it), split into its parts."""

    entry: str
    host: str
    user: str | None = None
    port: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KamalSsh:
    user: str = "root"
    port: int = 22
    proxy: str | None = None  # a jump host, `[user@]host[:port]`
    proxy_command: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KamalSettings:
    service: str | None
    image: str | None  # the repository: registry server + image name
    roles: Mapping[str, tuple[KamalHost, ...]]  # in Kamal's order (sorted by name)
    primary_role: str
    ssh: KamalSsh
    health_path: str
    retain_containers: int
    destination: str | None = None
    unresolved: tuple[str, ...] = ()  # "key.path: why", one per value we could not know
    problems: tuple[str, ...] = ()  # "key.path: what is wrong" (not fatal)

    @property
    def hosts(self) -> tuple[KamalHost, ...]:
        """Every host once, roles in order (Kamal's `all_hosts`)."""
        seen: dict[str, KamalHost] = {}
        for hosts in self.roles.values():
            for host in hosts:
                seen.setdefault(host.entry, host)
        return tuple(seen.values())

    @property
    def primary_host(self) -> KamalHost | None:
        hosts = self.roles.get(self.primary_role, ())
        return hosts[0] if hosts else None


@dataclass(slots=True)
class _Rendered:
    """ERB rendered as far as is safe: the text and why each placeholder is there."""

    text: str
    reasons: list[str]  # placeholder n → why its value is unknown
    statements: list[str]  # Ruby statements skipped (their effect on the file is unknown)


def render_erb(text: str, environ: Mapping[str, str]) -> _Rendered:
    """Replace each ERB tag by what it safely resolves to, or by a placeholder."""
    reasons: list[str] = []
    statements: list[str] = []

    def replace(match: re.Match[str]) -> str:
        kind, body = match["kind"], match["body"].strip()
        if kind == "#":
            return ""
        if kind != "=":  # a Ruby statement (`<% if … %>`): never run
            statements.append(f"<% {body[:60]} %>")
            return ""
        env = _ENV.fullmatch(body)
        if env:
            name = env["k1"] or env["k2"]
            if name in environ:
                return environ[name]
            if env["default"] is not None:
                return env["default"]
            reasons.append(f"environment variable {name} is not set")
            return _MARK.format(len(reasons) - 1)
        literal = _LITERAL.fullmatch(body)
        if literal:
            return literal["text"]
        reasons.append(f"Ruby expression not evaluated: <%= {body[:60]} %>")
        return _MARK.format(len(reasons) - 1)

    return _Rendered(_TAG.sub(replace, text), reasons, statements)


def load_file(text: str, name: str, environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """One config file: ERB rendered safely, YAML read safely. Returns the document (with
    placeholders left in unresolved values) and what could not be resolved, by key path."""
    rendered = render_erb(text, environ)
    try:
        data = yaml.safe_load(rendered.text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise KamalConfigError(where, f"YAML error: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KamalConfigError(name, f"expected a YAML mapping, got {type(data).__name__}")
    unresolved = [f"{name}: Ruby statement not evaluated: {s}" for s in rendered.statements]
    for path, value in _leaves(data, ""):
        for number in _MARKS.findall(value):
            unresolved.append(f"{path or name}: {rendered.reasons[int(number)]}")
    return data, unresolved


def _leaves(value: object, path: str) -> list[tuple[str, str]]:
    """Every string in the document (keys included) with its key path."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _MARKS.search(key):
                found.append((child, key))
            found.extend(_leaves(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_leaves(item, f"{path}[{index}]"))
    elif isinstance(value, str):
        found.append((path, value))
    return found


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Kamal's destination merge: tables merge key by key; any other value is replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_kamal_config(
    base: str,
    destination_text: str | None = None,
    *,
    destination: str | None = None,
    environ: Mapping[str, str] | None = None,
    base_name: str = "config/deploy.yml",
) -> KamalSettings:
    """The settings of `base` (a deploy.yml's text), merged with the destination file's text
    when given. Raises KamalConfigError for a file that is not a Kamal config at all."""
    env = os.environ if environ is None else environ
    data, unresolved = load_file(base, base_name, env)
    if destination_text is not None:
        extra, more = load_file(
            destination_text, destination_file(base_name, str(destination)), env
        )
        data, unresolved = deep_merge(data, extra), unresolved + more
    return derive(data, destination=destination, unresolved=unresolved)


def derive(
    data: Mapping[str, Any], *, destination: str | None = None, unresolved: list[str] | None = None
) -> KamalSettings:
    """The settings from an already merged document."""
    problems: list[str] = []
    unknown = [entry.split(": ", 1)[0] for entry in unresolved or []]

    def text(key: str, value: object) -> str | None:
        if value is None or key in unknown:
            return None
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{key}: expected a string, got {type(value).__name__}")
        return None

    service = text("service", data.get("service"))
    image = text("image", data.get("image"))
    registry = data.get("registry")
    server = text("registry.server", registry.get("server")) if isinstance(registry, dict) else None
    if image and server:
        image = f"{server}/{image}"
    roles = _roles(data.get("servers"), unknown, problems)
    primary = text("primary_role", data.get("primary_role")) or "web"
    ssh = _ssh(data.get("ssh"), unknown, problems)
    retain = data.get("retain_containers", DEFAULT_RETAIN)
    if not isinstance(retain, int) or isinstance(retain, bool) or retain < 1:
        problems.append(f"retain_containers: expected a positive integer, got {retain!r:.40}")
        retain = DEFAULT_RETAIN
    return KamalSettings(
        service=service,
        image=image,
        roles=roles,
        primary_role=primary,
        ssh=ssh,
        health_path=_health_path(data, primary, unknown, problems),
        retain_containers=retain,
        destination=destination,
        unresolved=tuple(unresolved or ()),
        problems=tuple(problems),
    )


def _roles(
    servers: object, unknown: list[str], problems: list[str]
) -> dict[str, tuple[KamalHost, ...]]:
    if servers is None:
        return {}
    if isinstance(servers, list):
        return {"web": _hosts(servers, "servers", unknown, problems)}
    if not isinstance(servers, dict):
        problems.append(f"servers: expected a list or a table, got {type(servers).__name__}")
        return {}
    roles: dict[str, tuple[KamalHost, ...]] = {}
    for name in sorted(servers, key=str):
        value, path = servers[name], f"servers.{name}"
        if isinstance(value, dict):
            value, path = value.get("hosts", []), f"servers.{name}.hosts"
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list of hosts, got {type(value).__name__}")
            continue
        roles[str(name)] = _hosts(value, path, unknown, problems)
    return roles


def _hosts(
    entries: list[Any], path: str, unknown: list[str], problems: list[str]
) -> tuple[KamalHost, ...]:
    hosts = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        tags: tuple[str, ...] = ()
        if isinstance(entry, dict) and len(entry) == 1:  # `host: tag` or `host: [tags]`
            entry, tag_value = next(iter(entry.items()))
            where = f"{where}.{entry}"
            tags = tuple(map(str, tag_value if isinstance(tag_value, list) else [tag_value]))
        if any(u == where or u.startswith(where + ".") for u in unknown):
            continue
        if not isinstance(entry, str):
            problems.append(f"{where}: expected a host name, got {type(entry).__name__}")
            continue
        try:
            spec = HostSpec.parse(entry.strip())
        except ValidationError as error:
            problems.append(f"{where}: {error}")
            continue
        hosts.append(KamalHost(entry.strip(), spec.host, spec.user, spec.port, tags))
    return tuple(hosts)


def _ssh(value: object, unknown: list[str], problems: list[str]) -> KamalSsh:
    if value is None:
        return KamalSsh()
    if not isinstance(value, dict):
        problems.append(f"ssh: expected a table, got {type(value).__name__}")
        return KamalSsh()
    user = value.get("user", "root")
    port = value.get("port", 22)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        if "ssh.port" not in unknown:
            problems.append(f"ssh.port: expected a port number, got {port!r:.40}")
        port = 22
    keys = value.get("keys", [])
    proxy = value.get("proxy")
    command = value.get("proxy_command")
    return KamalSsh(
        user=str(user) if "ssh.user" not in unknown else "root",
        port=port,
        proxy=str(proxy) if isinstance(proxy, str) and "ssh.proxy" not in unknown else None,
        proxy_command=str(command) if isinstance(command, str) else None,
        # an unresolved key is reported above; a placeholder must never become a key path
        keys=tuple(str(k) for k in keys if not _MARKS.search(str(k)))
        if isinstance(keys, list)
        else (),
    )


def _health_path(
    data: Mapping[str, Any], primary: str, unknown: list[str], problems: list[str]
) -> str:
    """The primary role's health path: its own `proxy` over the root `proxy`, else `/up`."""
    proxy = data.get("proxy") if isinstance(data.get("proxy"), dict) else {}
    servers = data.get("servers")
    role = servers.get(primary) if isinstance(servers, dict) else None
    if isinstance(role, dict) and isinstance(role.get("proxy"), dict):
        proxy = deep_merge(proxy or {}, role["proxy"])
        prefix = f"servers.{primary}.proxy"
    else:
        prefix = "proxy"
    check = (proxy or {}).get("healthcheck")
    path = check.get("path") if isinstance(check, dict) else None
    if path is None or any(
        u.startswith(f"{p}.healthcheck.path") for p in ("proxy", prefix) for u in unknown
    ):
        return DEFAULT_HEALTH_PATH
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"{prefix}.healthcheck.path: expected a URL path, got {path!r:.40}")
        return DEFAULT_HEALTH_PATH
    return path
