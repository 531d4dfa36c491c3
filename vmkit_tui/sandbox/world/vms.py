"""The VM half of the world: the hosts, the app containers on them, and the lines their log
sources print, with the outages that make a VM refuse connections or keys.

VM-facing API (used by the SSH sandbox):
- `world.vms() -> list[Vm]`, `world.vm(name) -> Vm`: snapshot with `name`, `address` (shown by
  Kamal as the host), `repo`, `environment`, `deploy_host`, `service`, `offline` (refuse
  connections), `auth_refused` (refuse the key). `set_vm_offline(name, bool)`,
  `set_vm_auth_refused(name, bool)` flip them by hand; scenarios flip them for a run's span.
- `world.vm_lines(vm, source) -> list[VmLine]`: every line emitted so far, oldest first;
  `source` is one of `VM_SOURCES`: "kamal-proxy" (kamal-proxy's JSON log lines, carrying their
  own `time`), "vmkit-agent" (journal messages, no prefix), "app" (the app containers' raw
  output; `VmLine.container` names the container).
- `world.follow_vm(vm, source, since) -> AsyncIterator[VmLine]`: lines after `since` (all when
  None), then new ones as the clock reaches them, until cancelled. Idle VMs emit heartbeat
  lines (app/proxy every 20 s, agent every 60 s of simulated time) while a container is live.
- `world.containers(vm) -> list[Container]`: every app container (newest first), running or
  stopped — what `docker ps -a` would list. Kamal prunes at the end of each successful
  `kamal deploy` (not `kamal rollback`): on each host, the stopped containers beyond the newest
  `RETAIN_CONTAINERS` are removed. A VM serves one destination, so this is per host and
  destination, as Kamal 2 does. `world.remove_container(vm, sha)` removes one by hand.

`Vms` is one of the parts `World` (world.py) is made of: a Kamal script's effects on the VMs
(lines, containers started and stopped, traffic switched) are recorded by `_register_script`,
and followers wait with `World._wait`.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from vmkit_tui.sandbox.world.base import Owner, WorldError, _Interval, _plus
from vmkit_tui.sandbox.world.clock import SimClock
from vmkit_tui.sandbox.world.kamal_output import KamalScript, VmEventKind, heartbeat_line

if TYPE_CHECKING:
    from vmkit_tui.sandbox.world.environments import _Env

VM_SOURCES = ("kamal-proxy", "vmkit-agent", "app")
RETAIN_CONTAINERS = 5  # Kamal's default retain_containers
_HEARTBEAT_PERIOD = {"app": 20.0, "kamal-proxy": 20.0, "vmkit-agent": 60.0}


@dataclass(frozen=True, slots=True)
class VmLine:
    at: datetime
    text: str
    container: str = ""


@dataclass(frozen=True, slots=True)
class Vm:
    name: str
    address: str
    repo: str
    environment: str
    service: str
    deploy_host: bool
    offline: bool
    auth_refused: bool
    destination: str = ""  # Kamal's destination label on its app containers


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    sha: str
    started_at: datetime
    stopped_at: datetime | None  # None while running

    @property
    def running(self) -> bool:
        return self.stopped_at is None


@dataclass(eq=False, slots=True)
class _VmRecord:
    name: str
    address: str
    env: _Env
    manual_offline: bool = False
    manual_auth_refused: bool = False


@dataclass(eq=False, slots=True)
class _ContainerRecord:
    name: str
    sha: str
    started_at: datetime
    owner: Owner
    stopped_at: datetime | None = None
    stop_owner: Owner | None = None
    removed_at: datetime | None = None  # `docker rm` by hand (`remove_container`)


class Vms:
    """Part of `World`: each VM's state, containers, live version and log lines over time."""

    clock: SimClock
    seed: int
    created_at: datetime
    _vms: dict[str, _VmRecord]
    _lines: dict[tuple[str, str], list[tuple[datetime, int, str, str, Owner]]]
    _containers: dict[str, list[_ContainerRecord]]
    _prunes: dict[str, list[tuple[datetime, Owner]]]  # VM → when Kamal pruned its containers
    _live: dict[str, list[tuple[datetime, int, str, Owner]]]
    _outages: dict[str, list[_Interval]]
    _seq: Iterator[int]  # orders lines and live switches of one moment

    def _outage_intervals(self, owner: Owner) -> list[_Interval]:
        return [
            interval
            for intervals in self._outages.values()
            for interval in intervals
            if interval.owner == owner
        ]

    def _outages_drop(self, owner: Owner) -> None:
        for vm, intervals in self._outages.items():
            self._outages[vm] = [interval for interval in intervals if interval.owner != owner]

    def _vm_state(self, vm: str, at: datetime) -> tuple[bool, bool]:
        record = self._vms[vm]
        offline, refused = record.manual_offline, record.manual_auth_refused
        for interval in self._outages[vm]:
            if interval.start <= at and (interval.end is None or at < interval.end):
                offline = offline or interval.what == "offline"
                refused = refused or interval.what == "auth"
        return offline, refused

    def _live_at(self, vm: str, at: datetime) -> str | None:
        switches = self._live[vm]
        index = bisect.bisect_right(switches, at, key=lambda item: item[0])
        return switches[index - 1][2] if index else None

    def _pruned_by(self, vm: str, at: datetime) -> set[int]:
        """The ids of the container records Kamal's prunes up to `at` removed from `vm`."""
        gone: set[int] = set()
        for moment, _ in sorted(self._prunes.get(vm, ()), key=lambda item: item[0]):
            if moment > at:
                break
            stopped = [
                record
                for record in self._containers[vm]
                if id(record) not in gone
                and record.started_at <= moment
                and record.stopped_at is not None
                and record.stopped_at <= moment
                and (record.removed_at is None or record.removed_at > moment)
            ]
            stopped.sort(key=lambda record: record.started_at, reverse=True)
            gone.update(id(record) for record in stopped[RETAIN_CONTAINERS:])
        return gone

    def _containers_at(self, vm: str, at: datetime) -> list[Container]:
        pruned = self._pruned_by(vm, at)
        found = [
            Container(
                record.name,
                record.sha,
                record.started_at,
                record.stopped_at
                if record.stopped_at is not None and record.stopped_at <= at
                else None,
            )
            for record in self._containers[vm]
            if record.started_at <= at
            and id(record) not in pruned
            and (record.removed_at is None or record.removed_at > at)
        ]
        found.sort(key=lambda container: container.started_at, reverse=True)
        return found

    def _retained_at(self, vm: str, at: datetime) -> tuple[str, ...]:
        """The versions a stopped container of is still on `vm` (rollback candidates)."""
        live = self._live_at(vm, at)
        retained: list[str] = []
        for container in self._containers_at(vm, at):
            if container.running or container.sha == live or container.sha in retained:
                continue
            retained.append(container.sha)
        return tuple(retained)

    def _kept_everywhere(self, env: _Env, version: str, at: datetime) -> bool:
        """Whether a container of `version` exists on every host (what `kamal rollback` checks)."""
        return all(
            any(container.sha == version for container in self._containers_at(host.vm, at))
            for host in env.target.hosts
        )

    def _vm_record(self, name: str) -> _VmRecord:
        try:
            return self._vms[name]
        except KeyError:
            raise WorldError(f"unknown VM: {name!r}") from None

    def vms(self) -> list[Vm]:
        return [self.vm(name) for name in self._vms]

    def vm(self, name: str) -> Vm:
        record = self._vm_record(name)
        offline, refused = self._vm_state(name, self.clock.now())
        return Vm(
            name=name,
            address=record.address,
            repo=record.env.repo.full_name,
            environment=record.env.name,
            service=record.env.target.service,
            deploy_host=record.env.target.hosts[0].vm == name,
            offline=offline,
            auth_refused=refused,
            destination=record.env.target.destination,
        )

    def set_vm_offline(self, name: str, offline: bool) -> None:
        self._vm_record(name).manual_offline = offline
        self._notify()

    def set_vm_auth_refused(self, name: str, refused: bool) -> None:
        self._vm_record(name).manual_auth_refused = refused
        self._notify()

    def containers(self, vm_name: str) -> list[Container]:
        self._vm_record(vm_name)
        return self._containers_at(vm_name, self.clock.now())

    def remove_container(self, vm_name: str, sha: str) -> None:
        """`docker rm` of the stopped container of `sha` on the VM, by hand, now."""
        now = self.clock.now()
        found = [c for c in self._containers_at(vm_name, now) if c.sha == sha]
        if not found or any(container.running for container in found):
            raise WorldError(f"no stopped container of {sha[:7]} on {vm_name}")
        for record in self._containers[vm_name]:
            if record.sha == sha and record.removed_at is None and record.started_at <= now:
                record.removed_at = now
        self._notify()

    def vm_lines(self, vm_name: str, source: str) -> list[VmLine]:
        """Every line `source` has emitted on the VM so far, oldest first."""
        return self._vm_lines_until(vm_name, source, self.clock.now())

    def _vm_lines_until(self, vm_name: str, source: str, until: datetime) -> list[VmLine]:
        self._vm_record(vm_name)
        if source not in VM_SOURCES:
            raise WorldError(f"unknown source {source!r}; one of {', '.join(VM_SOURCES)}")
        stored = self._lines[(vm_name, source)]
        index = bisect.bisect_right(stored, until, key=lambda line: line[0])
        lines = [VmLine(at, text, container) for at, _, text, container, _ in stored[:index]]
        beats = list(self._heartbeats(vm_name, source, until))
        return list(heapq.merge(lines, beats, key=lambda line: line.at)) if beats else lines

    def _heartbeat_times(self, vm_name: str, source: str) -> tuple[datetime, float]:
        period = _HEARTBEAT_PERIOD[source]
        phase = random.Random(f"{self.seed}:beat:{vm_name}:{source}").uniform(0, period)
        return _plus(self.created_at, phase), period

    def _heartbeats(self, vm_name: str, source: str, until: datetime) -> Iterator[VmLine]:
        first, period = self._heartbeat_times(vm_name, source)
        env = self._vms[vm_name].env
        index = 0
        while (moment := _plus(first, index * period)) <= until:
            live = self._live_at(vm_name, moment)
            if live is not None and not self._vm_state(vm_name, moment)[0]:
                rng = random.Random(f"{self.seed}:beat:{vm_name}:{source}:{index}")
                name = env.target.container_name(live)
                container = name if source == "app" else ""
                yield VmLine(
                    moment, heartbeat_line(rng, env.target, moment, name, source), container
                )
            index += 1

    def _next_vm_moment(self, vm_name: str, source: str, now: datetime) -> datetime:
        stored = self._lines[(vm_name, source)]
        index = bisect.bisect_right(stored, now, key=lambda line: line[0])
        first, period = self._heartbeat_times(vm_name, source)
        beats = max(0, int((now - first).total_seconds() // period) + 1)
        beat = _plus(first, beats * period)
        return min(stored[index][0], beat) if index < len(stored) else beat

    async def follow_vm(
        self, vm_name: str, source: str, since: datetime | None = None
    ) -> AsyncIterator[VmLine]:
        """Lines after `since` (all when None), then new ones as they appear; never ends."""
        last, seen_at_last = since, None  # None: skip every line at `last` (strictly after)
        while True:
            lines = self.vm_lines(vm_name, source)
            if last is None:
                start = 0
            else:
                low = bisect.bisect_left(lines, last, key=lambda line: line.at)
                start = (
                    bisect.bisect_right(lines, last, key=lambda line: line.at)
                    if seen_at_last is None
                    else low + seen_at_last
                )
            for line in lines[start:]:
                yield line
            if start < len(lines):
                last = lines[-1].at
                seen_at_last = len(lines) - bisect.bisect_left(
                    lines, last, key=lambda line: line.at
                )
            await self._wait(self._next_vm_moment(vm_name, source, self.clock.now()))

    def _register_script(
        self, env: _Env, script: KamalScript, start: datetime, owner: Owner, *, prune: bool = True
    ) -> None:
        """`prune`: the script is a `kamal deploy`, which prunes old containers once it has
        booted the new one (a `kamal rollback` does not)."""
        moments = []
        booted = any(event.kind is VmEventKind.CONTAINER_STARTED for event in script.vm_events)
        if prune and booted and script.exit_status == 0:
            end = _plus(start, script.duration)
            for host in env.target.hosts:
                self._prunes.setdefault(host.vm, []).append((end, owner))
            moments.append(end)
        for event in script.vm_events:
            at = _plus(start, event.offset)
            moments.append(at)
            if event.kind is VmEventKind.LINE:
                self._add_line(event.vm, event.source, at, event.text, event.container, owner)
            elif event.kind is VmEventKind.CONTAINER_STARTED:
                self._containers[event.vm].append(
                    _ContainerRecord(event.container, event.sha, at, owner)
                )
            elif event.kind is VmEventKind.CONTAINER_STOPPED:
                for record in reversed(self._containers[event.vm]):
                    if (
                        record.name == event.container
                        and record.stopped_at is None
                        and record.started_at <= at
                    ):
                        record.stopped_at, record.stop_owner = at, owner
                        break
            else:
                bisect.insort(self._live[event.vm], (at, next(self._seq), event.sha, owner))
        moments.extend(_plus(start, offset) for offset, _ in script.console)
        self._add_moments(moments)

    def _add_line(
        self, vm: str, source: str, at: datetime, text: str, container: str, owner: Owner
    ) -> None:
        bisect.insort(self._lines[(vm, source)], (at, next(self._seq), text, container, owner))
