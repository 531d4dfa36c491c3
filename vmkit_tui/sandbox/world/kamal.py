"""Kamal on the deploy hosts: `kamal` commands run over SSH, what a Kamal deploy meets (SSH,
the image in GHCR, the deploy lock, the health check), and the deploy locks themselves.

`world.start_kamal(vm, argv) -> KamalExecution`: Kamal run on the deploy host (`kamal rollback
V`, `kamal deploy --skip-push --version V` (also `-P`, `--version=V`), `kamal lock
status|release`, `kamal app containers|version`; optional `-d DEST`). Effects (VM lines, the
live version, the lock) happen on the clock whether or not anyone reads `lines()`.

`Kamal` is one of the parts `World` (world.py) is made of; it reads the VMs through `Vms`
(`_vm_record`, `_vm_state`, `_live_at`, `_kept_everywhere`, `_containers_at`), GHCR through
`GitHub._image_tags_at`, and puts a script's effects on the timeline with `_register_script`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from vmkit_tui.sandbox.world import seed_data
from vmkit_tui.sandbox.world.base import Owner, _Interval, _plus, _sha
from vmkit_tui.sandbox.world.clock import SimClock
from vmkit_tui.sandbox.world.kamal_output import (
    KamalScript,
    LockInfo,
    Outcome,
    deploy_script,
    lock_release_script,
    lock_status_script,
    rollback_script,
)

if TYPE_CHECKING:
    from vmkit_tui.sandbox.world.environments import _Env


class KamalExecution:
    """One Kamal command on a deploy host, replayed on the world's clock."""

    def __init__(self, clock: SimClock, lines: list[tuple[datetime, str]], status: int) -> None:
        self._clock = clock
        self._lines = lines
        self._status = status
        self.ends_at = lines[-1][0] if lines else clock.now()

    @property
    def exit_status(self) -> int | None:
        """None until the clock reaches the last line, then Kamal's exit status."""
        return self._status if self._clock.now() >= self.ends_at else None

    async def lines(self) -> AsyncIterator[str]:
        for at, text in self._lines:
            await self._clock.sleep_until(at)
            yield text

    async def wait(self) -> int:
        await self._clock.sleep_until(self.ends_at)
        return self._status


class Kamal:
    """Part of `World`: Kamal commands over SSH, the outcome of a Kamal deploy, deploy locks."""

    clock: SimClock
    seed: int
    _locks: dict[tuple[str, str], list[_Interval]]
    _kamal_runs: Iterator[int]

    def start_kamal(self, vm_name: str, argv: list[str]) -> KamalExecution:
        """Run Kamal on a deploy host (the `kamal-ssh` strategy); see the module docstring."""
        vm = self._vm_record(vm_name)
        env = vm.env
        now = self.clock.now()
        owner = f"kamal:{next(self._kamal_runs)}"
        rng = random.Random(f"{self.seed}:{owner}")
        positional, options, flags = _parse_kamal_argv(argv)
        destination = options.get("destination")
        lock = self._lock_at(env, now)
        previous = self._live_at(env.target.hosts[0].vm, now)
        if destination is not None and destination != env.name:
            script = _error_script(
                f"  ERROR (RuntimeError): Configuration file not found in config/deploy.{destination}.yml"
            )
        elif positional[:1] == ["rollback"] and len(positional) == 2:
            version = positional[1]
            retained = self._kept_everywhere(env, version, now)
            script = rollback_script(
                rng,
                env.target,
                now,
                version=version,
                previous=previous,
                retained=retained,
                lock=lock,
            )
        elif (
            positional == ["deploy"] and ({"-P", "--skip-push"} & flags) and options.get("version")
        ):
            version = options["version"]
            script = deploy_script(
                rng,
                env.target,
                now,
                version=version,
                previous=previous,
                outcome=self._kamal_outcome(env, now, version, "success"),
                lock=lock,
            )
        elif positional == ["lock", "status"]:
            script = lock_status_script(rng, env.target, now, lock)
        elif positional == ["lock", "release"]:
            script = lock_release_script(rng, env.target, now, lock)
            released = [
                offset for offset, text in script.console if text == "Released the deploy lock"
            ]
            if released:
                self._release_lock(env, _plus(now, released[0]))
        elif positional == ["app", "containers"]:
            script = _text_script(self._containers_table(env, now))
        elif positional == ["app", "version"]:
            versions: list[str] = []
            for host in env.target.hosts:
                versions += [f"App Host: {host.address}", self._live_at(host.vm, now) or ""]
            script = _text_script(versions)
        else:
            script = _error_script(f'Could not find command "{" ".join(positional[:1])}".')
        self._register_script(env, script, now, owner, prune=positional[:1] == ["deploy"])
        lines = sorted(
            ((_plus(now, offset), text) for offset, text in script.console),
            key=lambda item: item[0],
        )
        self._notify()
        return KamalExecution(self.clock, lines, script.exit_status)

    def _containers_table(self, env: _Env, at: datetime) -> list[str]:
        """`kamal app containers`: per host `App Host: H`, then `docker ps -a`'s default table
        (relative CREATED and STATUS, columns padded like docker's tabwriter)."""
        lines = []
        for host in env.target.hosts:
            lines.append(f"App Host: {host.address}")
            rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
            for container in self._containers_at(host.vm, at):
                seed = f"{self.seed}:cid:{container.name}:{container.started_at.isoformat()}"
                ident = f"{random.Random(seed).getrandbits(48):012x}"
                up = container.stopped_at is None
                status = (
                    f"Up {docker_duration(at - container.started_at)}"
                    if up
                    else f"Exited (0) {docker_duration(at - container.stopped_at)} ago"
                )
                rows.append(
                    [
                        ident,
                        f"{env.repo.image}:{container.sha}",
                        '"/cnb/process/web"',
                        f"{docker_duration(at - container.started_at)} ago",
                        status,
                        f"{env.target.stack.app_port}/tcp" if up else "",
                        container.name,
                    ]
                )
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
            for row in rows:
                cells = [cell.ljust(width + 3) for cell, width in zip(row, widths, strict=False)]
                lines.append("".join(cells) + row[-1])
        return lines

    def _kamal_outcome(
        self, env: _Env, at: datetime, version: str, wanted: str, *, rollback: bool = True
    ) -> Outcome:
        """What happens when Kamal deploys `version` at `at`: SSH first, then the pull, the
        lock, the health check — in the order Kamal meets them."""
        offline = any(self._vm_state(host.vm, at)[0] for host in env.target.hosts)
        refused = any(self._vm_state(host.vm, at)[1] for host in env.target.hosts)
        if wanted == "ssh_unreachable" or offline:
            return Outcome.SSH_UNREACHABLE
        if wanted == "ssh_auth_failed" or refused:
            return Outcome.SSH_AUTH_FAILED
        if rollback and version not in self._image_tags_at(env.repo.full_name, at):
            return Outcome.IMAGE_MISSING
        if wanted == "lock_held" or self._lock_at(env, at) is not None:
            return Outcome.LOCK_HELD
        if wanted == "health_timeout":
            return Outcome.HEALTH_TIMEOUT
        return Outcome.SUCCESS

    def _lock_at(self, env: _Env, at: datetime) -> LockInfo | None:
        for interval in self._locks[(env.repo.full_name, env.name)]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                return interval.lock
        return None

    def _hold_lock(
        self, env: _Env, at: datetime, owner: Owner, until: datetime | None = None
    ) -> None:
        rng = random.Random(f"{self.seed}:lock:{owner}")
        since = _plus(at, -rng.uniform(300, 3600))
        lock = LockInfo(
            holder=rng.choice(seed_data.LOCK_HOLDERS),
            since=since.replace(microsecond=0),
            version=self._live_at(env.target.hosts[0].vm, at) or _sha(rng),
            message=rng.choice(seed_data.LOCK_MESSAGES),
        )
        self._locks[(env.repo.full_name, env.name)].append(
            _Interval(since, until, owner, lock=lock)
        )

    def _release_lock(self, env: _Env, at: datetime) -> None:
        for interval in self._locks[(env.repo.full_name, env.name)]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                interval.end = at
        self._add_moments([at])


_KAMAL_OPTIONS = {
    "-d": "destination",
    "--destination": "destination",
    "-c": "config-file",
    "--config-file": "config-file",
    "--version": "version",
}


def _parse_kamal_argv(argv: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Kamal's command line → (positional words, options with values, bare flags)."""
    words = list(argv)
    if words and words[0].rsplit("/", 1)[-1] == "kamal":
        words = words[1:]
    positional: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    iterator = iter(words)
    for word in iterator:
        name, equals, value = word.partition("=")
        if name in _KAMAL_OPTIONS:
            options[_KAMAL_OPTIONS[name]] = value if equals else next(iterator, "")
        elif word.startswith("-"):
            flags.add(word)
        else:
            positional.append(word)
    return positional, options, flags


def _text_script(lines: list[str]) -> KamalScript:
    """Output of a quick read-only Kamal command."""
    return KamalScript(
        console=[(0.6 + index * 0.01, line) for index, line in enumerate(lines)], duration=0.8
    )


def _error_script(message: str) -> KamalScript:
    return KamalScript(console=[(0.5, message)], duration=0.5, exit_status=1)


def docker_duration(elapsed: timedelta) -> str:
    """How docker words an age (go-units' HumanDuration): `Less than a second`, `45 seconds`,
    `About a minute`, `3 hours`, `2 days`, `5 weeks`, `3 months`, `2 years`."""
    seconds = int(elapsed.total_seconds())
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
