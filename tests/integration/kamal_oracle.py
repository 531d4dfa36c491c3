"""Real Kamal as the oracle for what a Kamal config says (the `kamal` package from the test
extra: the real Kamal binary, no Ruby needed, no network).

`kamal config` prints the roles, hosts, primary host, repository and ssh options of a config;
what it does not print (the proxy's health check options, `retain_containers`) is asked of
Kamal's own configuration classes through a second, throwaway config whose ERB loads the real
one: that is Kamal evaluating its own code on the test's files, never vmkit-tui doing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KAMAL = Path(sys.executable).parent / "kamal"
# Asks Kamal's configuration classes what `kamal config` leaves out, and writes it as JSON.
_ASK = (
    '<% d = ENV["ORACLE_DEST"].to_s; d = nil if d.empty?; '
    'c = Kamal::Configuration.create_from(config_file: Pathname.new("config/deploy.yml"), '
    'destination: d, version: "oracle"); File.write(ENV["ORACLE_OUT"], { primary: '
    "c.primary_role.name, retain: c.retain_containers, proxy: c.roles.map { |r| [r.name, r.running_proxy? ? "
    "r.proxy.deploy_options : nil] }.to_h }.to_json) %>\n"
    "service: oracle\nimage: oracle/oracle\nservers: [192.0.2.1]\n"
    "registry:\n  username: oracle\n  password: oracle\n"
    "builder:\n  arch: amd64\n"
)


class _RubyYaml(yaml.SafeLoader):
    """`kamal config` prints Ruby objects (`!ruby/object:Net::SSH::Proxy::Jump`): read them
    as plain mappings; nothing is constructed."""


_RubyYaml.add_multi_constructor(
    "!ruby/", lambda loader, suffix, node: loader.construct_mapping(node)
)


@dataclass(frozen=True)
class KamalSays:
    hosts: list[str]
    primary_host: str
    repository: str
    service: str
    ssh_user: str
    ssh_port: int
    ssh_proxy: str | None
    health_path: str  # kamal-proxy's default `/up` when Kamal passes none
    retain_containers: int
    roles: list[str]


def write_project(root: Path, files: dict[str, str]) -> Path:
    """A Kamal project: its config files, and `.kamal/secrets` for the registry password."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".kamal").mkdir(exist_ok=True)
    (root / ".kamal" / "secrets").write_text("KAMAL_REGISTRY_PASSWORD=oracle\n")
    return root


def kamal_config(root: Path, destination: str | None, env: dict[str, str]) -> KamalSays:
    """What the real Kamal makes of the project in `root`."""
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), **env}
    dest = ["-d", destination] if destination else []
    (root / "config" / "oracle.yml").write_text(_ASK)
    out = root / "oracle.json"
    printed, _ = _run_both(  # two Kamal processes at once: each takes a moment to start
        ([str(KAMAL), "config", *dest, "--version", "oracle"], environ),
        (
            [str(KAMAL), "config", "-c", "config/oracle.yml", "--version", "oracle"],
            {**environ, "ORACLE_DEST": destination or "", "ORACLE_OUT": str(out)},
        ),
        root,
    )
    loader = _RubyYaml(printed)
    try:
        config: dict[str, Any] = loader.get_single_data()
    finally:
        loader.dispose()
    asked = json.loads(out.read_text())
    options = asked["proxy"].get(asked["primary"]) or {}
    ssh = config[":ssh_options"]
    proxy = ssh.get(":proxy")
    return KamalSays(
        hosts=config[":hosts"],
        primary_host=config[":primary_host"],
        repository=config[":repository"],
        service=config[":service_with_version"].removesuffix("-oracle"),
        ssh_user=ssh.get(":user", "root"),
        ssh_port=ssh.get(":port", 22),
        ssh_proxy=proxy.get("jump_proxies") if isinstance(proxy, dict) else None,
        health_path=options.get("health-check-path", "/up"),
        retain_containers=asked["retain"],
        roles=config[":roles"],
    )


Call = tuple[list[str], dict[str, str]]


def _run_both(first: Call, second: Call, cwd: Path) -> tuple[str, str]:
    procs = [
        subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv, env in (first, second)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out + err).decode(errors="replace")
        outputs.append(out.decode())
    return outputs[0], outputs[1]
