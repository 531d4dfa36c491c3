"""The VM side of deploy tracking: kamal-proxy and vmkit-agent output into the deploy's log.

While a deploy is active on an environment (and for a grace period after it ends, so the agent's
confirmation still lands), `VmWatcher` follows the kamal-proxy log and the vmkit-agent journal of
each of the environment's hosts over SSH and:

- appends every line to that deploy's spool (batched, labelled with host and source), so the log
  pane shows the VM's view next to GitHub's;
- records ONE `FIRST_HEALTHY` event (deterministic id, so two watchers never record it twice) at
  the moment kamal-proxy first marks the deploy's new target healthy: that ends the deploy's
  duration. The agent's `container … is healthy` line for the deploy's SHA is the fallback, used
  when the proxy never said so by the end of the grace period. Lines are attributed to the
  deploy only by the version they name (`vm_log.HealthWatch`), so two deploys overlapping on
  one environment each get their own moment; with none, the duration ends at run completion;
- publishes `LogGrew` (at most 20 a second per deploy) and per-host `SourceHealth` with a clear
  message: host unreachable, authentication failed, host key refused (file and fingerprint),
  command not found; OK once lines flow.

Reconnects after a drop are `ssh.follow`'s (with one gap marker record per outage, written to the
spool like any line); a host unreachable at the first attempt is retried here with backoff.
Trust, auth and command errors are never retried. `stop()` closes every stream (which stops the
remote commands), flushes and closes the spools, and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vmkit_tui.config import EnvironmentConfig
from vmkit_tui.domain.event_ids import first_healthy_id
from vmkit_tui.domain.models import Deploy, DeployRecord, EventKind, NewEvent, utcnow
from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import Broadcaster, DeployChanged, Health, SourceHealth
from vmkit_tui.sources import ssh
from vmkit_tui.sources.ssh.commands import DEFAULT_STREAMS, CommandContext, StreamSpec
from vmkit_tui.sources.ssh.vm_log import (
    PROXY_SOURCE,
    HealthWatch,
    VmEvent,
    parse_record,
)
from vmkit_tui.store.history import AsyncHistory, HistoryError, UnknownDeploy
from vmkit_tui.store.spool import LogRecord
from vmkit_tui.tracking.log_writer import SpoolLog

__all__ = ["GRACE_SECONDS", "WATCHED_SOURCES", "VmWatcher", "VmWatchers"]

GRACE_SECONDS = 30.0  # wall time after a deploy ends during which its VM streams stay open
WATCHED_SOURCES = ("kamal-proxy", "vmkit-agent")
HISTORY_RETRY = 1.0  # seconds before retrying a FIRST_HEALTHY append the history refused
# Which state of a host wins when its streams disagree: the one the user must act on first.
_SEVERITY = {
    Health.OK: 0,
    Health.RATE_LIMITED: 1,
    Health.UNREACHABLE: 2,
    Health.ERROR: 3,
    Health.AUTH: 4,
    Health.HOST_KEY: 5,
}


def _health_of(error: ssh.SshError) -> Health:
    if isinstance(error, ssh.HostKeyRefused):
        return Health.HOST_KEY
    if isinstance(error, ssh.AuthenticationFailed):
        return Health.AUTH
    if isinstance(error, ssh.HostUnreachable | ssh.ConnectionDropped):
        return Health.UNREACHABLE
    return Health.ERROR


@dataclass(frozen=True, slots=True)
class _Stream:
    host: str  # the config's `user@host[:port]`: SourceHealth key and messages
    label: str  # the host as records show it (`host`, or `host:port` off port 22)
    target: ssh.SshTarget
    spec: StreamSpec


class VmWatcher:
    """Streams the VM logs of one environment's deploys; see the module docstring.

    The deploy service calls `watch(record)` when tracking sees a deploy start (or finds one
    running), `deploy_finished(deploy_id)` when it reaches a final status, `stop()` on exit."""

    def __init__(
        self,
        repo: str,
        env: EnvironmentConfig,
        history: AsyncHistory,
        data_dir: Path,
        updates: Broadcaster,
        *,
        now: Callable[[], datetime] = utcnow,
        ssh_options: ssh.SshOptions | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.repo = repo
        self.env = env
        self.history = history
        self.data_dir = Path(data_dir)
        self.updates = updates
        self.now = now
        self.options = ssh_options or ssh.SshOptions()
        self.grace = grace
        specs = [
            StreamSpec.from_config(source, env.streams[source])
            if source in env.streams
            else DEFAULT_STREAMS[source]
            for source in WATCHED_SOURCES
        ]
        self._streams: list[_Stream] = []
        for host in env.hosts:
            target = ssh.SshTarget(
                host.user, host.host, host.port, env.identity_file, env.known_hosts
            )
            label = target.label
            self._streams += [_Stream(str(host), label, target, spec) for spec in specs]
        self._deploys: dict[str, _DeployWatch] = {}
        self._health: dict[tuple[str, str], tuple[Health, str]] = {}
        self._shown: dict[str, tuple[Health, str]] = {}
        self._stopped = False

    @property
    def watching(self) -> list[str]:
        """Ids of the deploys whose VM logs are being streamed now."""
        return list(self._deploys)

    async def watch(self, record: DeployRecord) -> None:
        """Start streaming for this deploy (a no-op if it is already watched)."""
        if self._stopped or record.id in self._deploys:
            return
        watch = _DeployWatch(self, record)
        self._deploys[record.id] = watch
        watch.start()

    def kamal_target(self, deploy_id: str, container_id: str) -> None:
        """Kamal, running this deploy over SSH, handed kamal-proxy this container: it is the
        deploy's version (see `HealthWatch.ours`)."""
        watch = self._deploys.get(deploy_id)
        if watch is not None:
            watch.ours(container_id)

    async def deploy_finished(self, deploy_id: str) -> None:
        """The deploy reached a final status: keep streaming for the grace period, then stop."""
        watch = self._deploys.get(deploy_id)
        if watch is not None and watch.expiry is None:
            watch.expiry = asyncio.create_task(self._expire(watch))

    async def _expire(self, watch: _DeployWatch) -> None:
        await asyncio.sleep(self.grace)
        await watch.close()

    async def stop(self) -> None:
        """Close every stream, flush and close every spool; no task is left running."""
        self._stopped = True
        watches = list(self._deploys.values())
        await asyncio.gather(*(watch.close() for watch in watches))

    def _forget(self, watch: _DeployWatch) -> None:
        if self._deploys.get(watch.deploy.id) is watch:
            del self._deploys[watch.deploy.id]

    def _set_health(self, stream: _Stream, health: Health, message: str = "") -> None:
        """Record one stream's state; publish the host's (its worst stream's) when it changes."""
        key = (stream.host, stream.spec.source)
        if self._health.get(key) == (health, message):
            return
        self._health[key] = (health, message)
        states = [state for (host, _), state in self._health.items() if host == stream.host]
        shown = max(states, key=lambda state: _SEVERITY[state[0]])
        if self._shown.get(stream.host) == shown:
            return
        self._shown[stream.host] = shown
        self.updates.publish(
            SourceHealth(f"ssh:{stream.host}", self.repo, self.env.name, shown[0], shown[1])
        )


class VmWatchers:
    """The VM log watchers of one process: one per environment with hosts, made on first use.
    The service's tracking (deploys run by GitHub) and the kamal-ssh actions (deploys run by
    Kamal over SSH) share them. `stop()` stops them all; a later `get` makes new ones."""

    def __init__(
        self,
        history: AsyncHistory,
        data_dir: Path,
        updates: Broadcaster,
        *,
        now: Callable[[], datetime] = utcnow,
        ssh_options: ssh.SshOptions | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.history = history
        self.data_dir = Path(data_dir)
        self.updates = updates
        self.now = now
        self.ssh_options = ssh_options
        self.grace = grace
        self._watchers: dict[tuple[str, str], VmWatcher] = {}

    def get(self, repo: str, env: EnvironmentConfig) -> VmWatcher | None:
        """The environment's watcher (made now if there is none yet), or None without hosts."""
        if not env.hosts:
            return None
        key = (repo, env.name)
        watcher = self._watchers.get(key)
        if watcher is None:
            watcher = self._watchers[key] = VmWatcher(
                repo,
                env,
                self.history,
                self.data_dir,
                self.updates,
                now=self.now,
                ssh_options=self.ssh_options,
                grace=self.grace,
            )
        return watcher

    def find(self, repo: str, environment: str) -> VmWatcher | None:
        """The environment's watcher if one was made (None otherwise)."""
        return self._watchers.get((repo, environment))

    async def stop(self) -> None:
        """Stop every watcher (their streams, spools and tasks)."""
        watchers = list(self._watchers.values())
        self._watchers.clear()
        await asyncio.gather(*(watcher.stop() for watcher in watchers))


class _DeployWatch:
    """The streams, spool and first-healthy tracking of one deploy."""

    def __init__(self, owner: VmWatcher, record: DeployRecord) -> None:
        self.owner = owner
        self.deploy: Deploy = record.deploy
        self.healthy = HealthWatch(self.deploy.sha, since=self.deploy.created_at)
        self.recorded = record.first_healthy_at is not None
        self.pending: NewEvent | None = None
        self.log = SpoolLog(
            owner.data_dir,
            self.deploy.id,
            owner.updates,
            repo=owner.repo,
            environment=owner.env.name,
            after_flush=self._after_flush,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.expiry: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None
        self.done = False

    def start(self) -> None:
        owner = self.owner
        context = CommandContext(
            service=owner.env.service, destination=owner.env.destination, sha=self.deploy.sha
        )
        self.tasks = [
            asyncio.create_task(self._follow(stream, context)) for stream in owner._streams
        ]

    # ------------------------------------------------------------------ streams

    async def _follow(self, stream: _Stream, context: CommandContext) -> None:
        """One source on one host for the deploy's lifetime; retries only an unreachable host
        (`ssh.follow` handles drops once connected)."""
        owner, options = self.owner, self.owner.options
        delay = options.reconnect_delay
        told_unreachable = False
        while True:
            records = ssh.follow(
                stream.target, stream.spec, context, since=self.deploy.created_at, options=options
            )
            try:
                async for record in records:
                    owner._set_health(stream, Health.OK)
                    self._take(stream, record)
                return
            except ssh.SshError as exc:
                health = _health_of(exc)
                message = plain(f"{stream.spec.source} log: {exc}")
                owner._set_health(stream, health, message)
                if health is not Health.UNREACHABLE:
                    self._note(stream, f"{message} (stream stopped)")
                    return
                if not told_unreachable:
                    self._note(stream, f"{message} (retrying)")
                    told_unreachable = True
            finally:
                await records.aclose()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, options.reconnect_max_delay)

    def _take(self, stream: _Stream, record: LogRecord) -> None:
        if record.host != stream.label:
            record = record._replace(host=stream.label)
        self.log.append(record)
        if self.recorded or self.pending is not None:
            return
        event = parse_record(record)
        found = self.healthy.feed(event) if event is not None else None
        if found is not None:
            self._healthy_at(found)

    def ours(self, container_id: str) -> None:
        found = self.healthy.ours(container_id)
        if found is not None and not self.recorded and self.pending is None:
            self._healthy_at(found)

    def _healthy_at(self, event: VmEvent) -> None:
        what = "target healthy" if event.source == PROXY_SOURCE else "container healthy"
        self.pending = NewEvent(
            self.deploy.id,
            EventKind.FIRST_HEALTHY,
            event.at,
            detail=f"{event.source} on {event.host}: {what}",
            data={"host": event.host, "source": event.source},
            event_id=first_healthy_id(self.deploy.id),
        )
        self.log.wake()

    def _note(self, stream: _Stream, text: str) -> None:
        """A line of our own in the deploy's log: why VM lines are missing."""
        self.log.append(LogRecord(self.owner.now(), stream.label, ssh.VMKIT_SOURCE, text))

    # ------------------------------------------------------------------ spool and history

    async def _after_flush(self) -> None:
        """After each spool write: record the first-healthy moment once it is known."""
        if self.pending is not None:
            await self._record_healthy(self.pending)

    async def _record_healthy(self, event: NewEvent) -> None:
        history = self.owner.history
        try:
            await history.append_events([event])
            record = await history.record(self.deploy.id)
        except UnknownDeploy:
            self.pending = None  # pruned meanwhile: nothing to record it on
            return
        except (HistoryError, OSError):
            if not self.done:  # busy or failed: try again shortly
                asyncio.get_running_loop().call_later(HISTORY_RETRY, self.log.wake)
            return
        self.pending, self.recorded = None, True
        self.owner.updates.publish(DeployChanged(record))

    # ------------------------------------------------------------------ closing

    def close(self) -> asyncio.Future[None]:
        """Stop streaming and finish the spool; safe to call (and await) more than once."""
        if self.closing is None:
            self.closing = asyncio.ensure_future(self._close())
        return asyncio.shield(self.closing)

    async def _close(self) -> None:
        tasks = [*self.tasks, *([self.expiry] if self.expiry is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        fallback = self.healthy.fallback
        if not self.recorded and self.pending is None and fallback is not None:
            self._healthy_at(fallback)
        self.done = True
        await self.log.close()
        self.owner._forget(self)
