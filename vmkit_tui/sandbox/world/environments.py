"""Environments, where GitHub meets the VMs: a branch of a repo, its workflow, the Kamal target
(service, image, hosts) it deploys to, and at any moment the live version and the deploy lock.

`Environments` is one of the parts `World` (world.py) is made of; a snapshot reads the live
version and retained containers from `Vms` and the lock from `Kamal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.base import WorldError
from vmkit_tui.sandbox.world.clock import SimClock
from vmkit_tui.sandbox.world.github import Repo, Workflow
from vmkit_tui.sandbox.world.kamal_output import KamalHost, KamalTarget, LockInfo
from vmkit_tui.sandbox.world.vms import VM_SOURCES, _VmRecord

ENV_BRANCHES = {"production": "main", "staging": "staging", "preview": "preview"}


@dataclass(frozen=True, slots=True)
class Environment:
    """An environment at one moment (`World.environment` builds it for `clock.now()`)."""

    repo: str
    name: str
    workflow: Workflow
    branch: str
    vm_names: tuple[str, ...]
    deploy_host: str
    service: str
    image: str
    public_host: str
    live_sha: str | None
    retained: tuple[str, ...]  # stopped containers' SHAs Kamal still keeps, newest first
    lock_holder: str | None
    lock: LockInfo | None


@dataclass(eq=False, slots=True)
class _Env:
    repo: Repo
    name: str
    branch: str
    workflow: Workflow
    target: KamalTarget


class Environments:
    """Part of `World`: every repo's environments, and the VMs, containers, lines, outages and
    lock intervals an environment starts with."""

    clock: SimClock
    _envs: dict[tuple[str, str], _Env]

    def _add_environment(
        self, repo: Repo, spec: seed_data.RepoSpec, name: str, vm_count: int
    ) -> _Env:
        short = {"production": "prod", "staging": "stg", "preview": "pre"}.get(name, name)
        hosts = []
        for index in range(1, vm_count + 1):
            vm_name = f"{repo.name}-{short}-{index}"
            address = f"203.0.113.{len(self._vms) + 10}"
            hosts.append(KamalHost(vm_name, address))
        public = spec.public_host if name == "production" else f"{name}.{spec.public_host}"
        target = KamalTarget(repo.name, name, repo.image, tuple(hosts), repo.stack, public)
        env = _Env(
            repo, name, ENV_BRANCHES.get(name, name), self._workflows[repo.full_name], target
        )
        self._envs[(repo.full_name, name)] = env
        for host in hosts:
            self._vms[host.vm] = _VmRecord(host.vm, host.address, env)
            self._containers[host.vm] = []
            self._live[host.vm] = []
            for source in VM_SOURCES:
                self._lines[(host.vm, source)] = []
            self._outages[host.vm] = []
        self._locks[(repo.full_name, name)] = []
        return env

    def _env(self, repo: Repo | str, environment: Environment | str) -> _Env:
        name = environment.name if isinstance(environment, Environment) else environment
        try:
            return self._envs[(self._repo(repo).full_name, name)]
        except KeyError:
            raise WorldError(f"unknown environment: {name!r}") from None

    def environments(self, repo: Repo | str | None = None) -> list[Environment]:
        wanted = None if repo is None else self._repo(repo).full_name
        return [
            self._environment_at(env, self.clock.now())
            for (repo_name, _), env in self._envs.items()
            if wanted in (None, repo_name)
        ]

    def environment(self, repo: Repo | str, name: str) -> Environment:
        return self._environment_at(self._env(repo, name), self.clock.now())

    def _environment_at(self, env: _Env, at: datetime) -> Environment:
        primary = env.target.hosts[0].vm
        lock = self._lock_at(env, at)
        return Environment(
            repo=env.repo.full_name,
            name=env.name,
            workflow=env.workflow,
            branch=env.branch,
            vm_names=tuple(host.vm for host in env.target.hosts),
            deploy_host=primary,
            service=env.target.service,
            image=env.repo.image,
            public_host=env.target.public_host,
            live_sha=self._live_at(primary, at),
            retained=self._retained_at(primary, at),
            lock_holder=lock.holder if lock else None,
            lock=lock,
        )
