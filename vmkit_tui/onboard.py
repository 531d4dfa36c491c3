"""What `vmkit-tui init` finds and the config it derives, apart from any terminal.

For each repository (named, or every repository of the token's user that has a deploy
workflow): the deploy workflow, i.e. the one whose `workflow_dispatch` takes `sha` or
`environment` (what vmkit-tui's rollback dispatches), and the Kamal config, through the
contents API or from a local checkout. Each Kamal destination (`config/deploy.<d>.yml`) becomes
an environment of that name; a project without destinations is one environment. Everything
Kamal says (service, image, hosts, ssh user/port/keys, health path) is carried over; what it
cannot say is chosen plainly: the branch of `production` is the default branch, another
environment's is the push branch of its name when the workflow has one. The sandbox's demo
writes its config through `render_config` too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from vmkit_tui.config_table import toml_string
from vmkit_tui.domain.text import escaped
from vmkit_tui.kamal_link import host_specs
from vmkit_tui.sources.kamal_config import (
    KamalConfigError,
    KamalSettings,
    destination_file,
    destination_of,
    read_kamal_config,
)

if TYPE_CHECKING:
    from vmkit_tui.sources.github import GitHubClient

KAMAL_CONFIG = "config/deploy.yml"
DEPLOY_INPUTS = ("sha", "environment")


class InitError(Exception):
    """One line: which repository or file, and what stops init there."""


@dataclass(frozen=True, slots=True)
class DeployWorkflow:
    file_name: str
    push_branches: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()  # the `environment` input's choices, in their order


@dataclass(frozen=True, slots=True)
class EnvironmentPlan:
    name: str
    branch: str
    destination: str | None
    settings: KamalSettings
    source: str  # the files it came from, for the comment above it


@dataclass(slots=True)
class RepoPlan:
    name: str
    workflow: DeployWorkflow
    environments: list[EnvironmentPlan] = field(default_factory=list)

    @property
    def image(self) -> str | None:
        return next((e.settings.image for e in self.environments if e.settings.image), None)

    def notes(self) -> list[str]:
        """Every value that could not be resolved or was not usable, once, by key path."""
        seen: dict[str, None] = {}
        for env in self.environments:
            for line in (*env.settings.unresolved, *env.settings.problems):
                seen.setdefault(line, None)
        return list(seen)


def deploy_workflow(text: str, file_name: str) -> DeployWorkflow | None:
    """The workflow, if its `workflow_dispatch` takes `sha` or `environment` (YAML read safely;
    `on:` is YAML 1.1's boolean true, so both spellings are looked up)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    on = data.get("on", data.get(True))
    if not isinstance(on, dict):
        return None
    dispatch = on.get("workflow_dispatch")
    inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    if not isinstance(inputs, dict) or not any(name in inputs for name in DEPLOY_INPUTS):
        return None
    push = on.get("push")
    branches = push.get("branches") if isinstance(push, dict) else None
    environment = inputs.get("environment")
    options = environment.get("options") if isinstance(environment, dict) else None
    return DeployWorkflow(file_name, _strings(branches), _strings(options))


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


async def find_workflow(client: GitHubClient, repo: str) -> DeployWorkflow | None:
    for flow in await client.workflows(repo):
        if flow.state != "active":
            continue
        found = await client.get_file(repo, flow.path)
        if found is not None and (workflow := deploy_workflow(found.text, flow.file_name)):
            return workflow
    return None


async def plan_repos(
    client: GitHubClient,
    repos: Sequence[str],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[RepoPlan]:
    """A plan per repository (every repo of the user with a deploy workflow when none named)."""
    if path is not None and len(repos) != 1:
        raise InitError("with --path, name the one repository it is a checkout of (OWNER/REPO)")
    known = {info.full_name: info for info in await client.user_repos()}
    names = list(repos) or [name for name, info in known.items() if not info.archived]
    plans = []
    for name in names:
        workflow = await find_workflow(client, name)
        if workflow is None:
            if repos:
                raise InitError(
                    f"{name}: no workflow whose workflow_dispatch takes `sha` or `environment`"
                )
            continue
        branch = known[name].default_branch if name in known else "main"
        files = _local_files(path) if path is not None else await _remote_files(client, name)
        plans.append(_plan(name, workflow, branch, files, environ))
    return plans


async def _remote_files(client: GitHubClient, repo: str) -> dict[str, str]:
    base = await client.get_file(repo, KAMAL_CONFIG)
    if base is None:
        raise InitError(f"{repo}: no {KAMAL_CONFIG} (or use --path DIR for a local checkout)")
    files = {KAMAL_CONFIG: base.text}
    for name in await client.list_dir(repo, "config"):
        if destination_of(KAMAL_CONFIG, f"config/{name}"):
            found = await client.get_file(repo, f"config/{name}")
            if found is not None:
                files[f"config/{name}"] = found.text
    return files


def _local_files(root: Path) -> dict[str, str]:
    config = root / "config"
    try:
        files = {KAMAL_CONFIG: (config / "deploy.yml").read_text("utf-8")}
        for path in sorted(config.glob("deploy.*.yml")):
            if destination_of(KAMAL_CONFIG, f"config/{path.name}"):
                files[f"config/{path.name}"] = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InitError(f"{config}: cannot read the Kamal config: {error}") from None
    return files


def _plan(
    repo: str,
    workflow: DeployWorkflow,
    default_branch: str,
    files: dict[str, str],
    environ: Mapping[str, str] | None,
) -> RepoPlan:
    plan = RepoPlan(repo, workflow)
    found = [d for path in files if (d := destination_of(KAMAL_CONFIG, path))]
    order = {name: index for index, name in enumerate(workflow.environments)}
    # The workflow's order of environments, then production first, then by name.
    destinations = sorted(found, key=lambda d: (order.get(d, len(order)), d != "production", d))
    for destination in (*destinations,) or (None,):
        extra_name = destination_file(KAMAL_CONFIG, destination) if destination else None
        extra = files.get(extra_name) if extra_name else None
        try:
            settings = read_kamal_config(
                files[KAMAL_CONFIG], extra, destination=destination, environ=environ
            )
        except KamalConfigError as error:
            raise InitError(f"{repo}: {error}") from None
        name = destination or "production"
        branch = default_branch
        if name != "production" and name in workflow.push_branches:
            branch = name
        source = KAMAL_CONFIG + (f" + {extra_name}" if extra_name else "")
        plan.environments.append(EnvironmentPlan(name, branch, destination, settings, source))
    return plan


def _comment(text: str) -> str:
    """A TOML comment that stays one line, whatever the Kamal config put in `text`."""
    return f"# {escaped(text)}"


def render_config(
    plans: Sequence[RepoPlan],
    *,
    known_hosts: Path | None = None,
    header: Sequence[str] = (),
    preamble: Sequence[str] = (),
    primary_runs_kamal: bool = False,
) -> str:
    """The config text for `plans` (TOML): `header` as comments, the caller's `preamble` lines
    (the tables it owns: [github], [paths]…), then the repos.
    `primary_runs_kamal`: each primary host has Kamal (as the sandbox's VMs do), so it is
    written as `deploy_host`, ready for `rollback = "kamal-ssh"`."""
    lines = [*(_comment(line) for line in header), *preamble, ""]
    for plan in plans:
        lines += ["[[repos]]", f"name = {toml_string(plan.name)}"]
        if plan.image:
            lines.append(f"image = {toml_string(plan.image)}")
        lines += [_comment(f"unresolved: {note}") for note in plan.notes()]
        lines.append("")
        for env in plan.environments:
            lines += _environment(env, plan.workflow.file_name, known_hosts, primary_runs_kamal)
    return "\n".join(lines)


def _environment(
    env: EnvironmentPlan, workflow: str, known_hosts: Path | None, primary_runs_kamal: bool
) -> list[str]:
    settings = env.settings
    ssh = settings.ssh
    specs = {h.entry: spec for h, spec in zip(settings.hosts, host_specs(settings), strict=True)}
    lines = [
        f"[repos.environments.{env.name}]",
        _comment(f"from {env.source} (Kamal keeps {settings.retain_containers} old containers)"),
        f"workflow = {toml_string(workflow)}",
        f"branch = {toml_string(env.branch)}",
        "hosts = [" + ", ".join(toml_string(str(spec)) for spec in specs.values()) + "]",
        f"health_path = {toml_string(settings.health_path)}",
    ]
    primary = settings.primary_host
    if primary_runs_kamal and primary is not None:
        lines.append(f"deploy_host = {toml_string(str(specs[primary.entry]))}")
    if settings.service:
        lines.append(f"service = {toml_string(settings.service)}")
    if env.destination:
        lines.append(f"destination = {toml_string(env.destination)}")
    if ssh.keys:
        lines.append(f"identity_file = {toml_string(ssh.keys[0])}")
    if known_hosts is not None:
        lines.append(f"known_hosts = {toml_string(str(known_hosts))}")
    if len(ssh.keys) > 1:
        lines.append(
            _comment(
                f"Kamal also offers the keys {', '.join(ssh.keys[1:])}: only the first is used"
            )
        )
    if ssh.proxy or ssh.proxy_command:
        via = f"ProxyJump {ssh.proxy}" if ssh.proxy else f"ProxyCommand {ssh.proxy_command}"
        lines.append(_comment(f"Kamal reaches these hosts through {via}: say so in ~/.ssh/config"))
    return [*lines, ""]
