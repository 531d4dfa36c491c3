"""What the VM's own logs say about a deploy: kamal-proxy and vmkit-agent lines → typed events.

The deploy's duration ends at the **first healthy response** of the new container, which only
the VM knows: kamal-proxy logs `Target health updated` (state `healthy`, was `adding`) the
moment its health check first passes, long before `kamal-proxy deploy` returns (that waits for
the old target to drain). The agent's `container healthy` line is the fallback when the proxy's
log is not available.

kamal-proxy writes Go `slog` JSON lines (source: basecamp/kamal-proxy `internal/server`):

    {"time":"…","level":"INFO","msg":"Deploying","service":"web-web-production","hosts":[…],"target":"…:3000","tls":true}
    {"time":"…","level":"INFO","msg":"Healthcheck failed","url":"http://…/up","error":"…"}
    {"time":"…","level":"INFO","msg":"Target health updated","target":"…:3000","state":"healthy","was":"adding"}
    {"time":"…","level":"INFO","msg":"Deployed","service":"…","hosts":[…],"target":"…"}

Releases before March 2025 log `Target health updated` after *every* check, with a `success`
field and no `was` (`"success":false,"state":"adding"` while the app boots, then
`"success":true,"state":"healthy"` on each passing check): the first passing one of a target is
its first-healthy moment. A deploy that times out is not logged by kamal-proxy as such in
current releases: `kamal-proxy deploy` returns `Error: target failed to become healthy within
configured timeout (30s)`, which Kamal relays as plain text (`docker stderr: Error: …`); some
old releases also logged `Target failed to become healthy`, still read here.

vmkit-agent lines (journald messages; plain sentences naming the container, optionally with
logfmt fields such as `sha=`, `container=`, `level=`, or the same as JSON with `msg`):

    new container <service>-web-<dest>-<sha> is healthy: GET /up 200 in 7ms
    traffic flowing to <container>: 120 requests in 5s, 0 errors
    new container <container> never became healthy within 30s; traffic stays on <old>
    heartbeat: <container> healthy, serving traffic: … (ignored)

    watching new container <service>-web-<dest>-<sha> (<container id>)

The SHA is taken from a `sha=` field or from the container name.

**Attribution.** Two deploys may overlap on one environment (a rollback dispatched while a push
deploy runs), so an event counts for a deploy only by the version it names, never by its time:
Kamal names each container `<service>-<role>[-<destination>]-<version>`; kamal-proxy names the
target it routes to, which Kamal gives as the container's id (Kamal 2 since 2.1: `docker container
ls --quiet`, 12 hex) or, in older releases, its name. A target named by id is tied to its version
by the agent's `watching new container <name> (<id>)` line on the same host, or, for a deploy
vmkit-tui runs with Kamal over SSH, by Kamal's own echo of `kamal-proxy deploy …
--target="<id>:<port>"` (that invocation deploys one version), whichever arrives first. An event
whose version cannot be told is attributed to nobody.

Remote text is data: nothing here evaluates it, and the original line is kept for diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from vmkit_tui.store.spool import LogRecord

__all__ = [
    "HealthWatch",
    "VmEvent",
    "VmEventKind",
    "first_healthy",
    "parse_agent_line",
    "parse_proxy_line",
    "parse_record",
    "parse_records",
]

PROXY_SOURCE = "kamal-proxy"
AGENT_SOURCE = "vmkit-agent"
_FAILED_TO_BECOME_HEALTHY = "failed to become healthy"
_CHECK_PASSED = "check passed"  # kamal-proxy before March 2025: `success` true, no `was`
_SHA = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")
_AGENT_TROUBLE = ("unhealthy", "never became healthy", "not healthy", "failed", "error:")
_FIELD = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
# "container <name> (<id>)": the agent naming a container and its docker id
_NAMED_CONTAINER = re.compile(r"container (\S+) \(([0-9a-f]{12,64})\)")
_ID_LENGTH = 12  # docker's short id, what Kamal hands kamal-proxy as the target


class VmEventKind(StrEnum):
    DEPLOYING = "deploying"  # proxy: switching a service to a new target began
    TARGET_HEALTHY = "target_healthy"  # proxy: a target passed its health check
    TARGET_UNHEALTHY = "target_unhealthy"  # proxy: a healthy target started failing
    HEALTHCHECK_FAILED = "healthcheck_failed"  # proxy: one probe failed (detail: why)
    DEPLOY_FAILED = "deploy_failed"  # the new target never became healthy in time
    DEPLOYED = "deployed"  # proxy: traffic switched and the old target drained
    CONTAINER_STARTED = "container_started"  # agent: a new container (name and id) is up
    CONTAINER_HEALTHY = "container_healthy"  # agent: the new container answers its checks
    TRAFFIC_FLOWING = "traffic_flowing"  # agent: requests reach the new container
    AGENT_ERROR = "agent_error"  # agent: something went wrong (detail: what)


@dataclass(frozen=True, slots=True)
class VmEvent:
    kind: VmEventKind
    at: datetime
    host: str = ""
    source: str = ""
    service: str = ""
    target: str = ""
    sha: str | None = None
    detail: str = ""
    line: str = ""
    container_id: str = ""  # agent: the docker id of the container `target` names


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _moment(value: object, fallback: datetime) -> datetime:
    """The line's own time when it has a usable one, else when it was received."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    return fallback


def _find_sha(*values: str) -> str | None:
    for value in values:
        match = _SHA.search(value)
        if match:
            return match.group()
    return None


def _proxy_target(doc: dict[str, Any]) -> str:
    target = doc.get("target")
    if not isinstance(target, str):
        targets = doc.get("targets")
        target = targets[0] if isinstance(targets, list) and targets else ""
    return _text(target)


def proxy_summary(text: str) -> str:
    """A kamal-proxy JSON log line as people read it: `INFO Deploying service=… target=…`
    (its own time is dropped: the log view shows it). Anything else is returned unchanged."""
    if not text.startswith("{"):
        return text
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(doc, dict) or "msg" not in doc:
        return text
    level, msg = doc.pop("level", ""), doc.pop("msg", "")
    doc.pop("time", None)
    fields = " ".join(f"{key}={value}" for key, value in doc.items())
    return " ".join(part for part in (str(level), str(msg), fields) if part)


def parse_proxy_line(
    text: str, at: datetime, host: str = "", source: str = PROXY_SOURCE
) -> VmEvent | None:
    """A kamal-proxy log line (or Kamal's relay of its failure) → event, or None if the line
    says nothing about a deploy (request logs, startup noise)."""
    if "Deploy" not in text and "ealth" not in text:  # cheap reject for request logs
        return None
    if not text.startswith("{"):
        if _FAILED_TO_BECOME_HEALTHY in text:
            return VmEvent(VmEventKind.DEPLOY_FAILED, at, host, source, detail=text, line=text)
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    msg, error = _text(doc.get("msg")), _text(doc.get("error"))
    when = _moment(doc.get("time"), at)
    service, target = _text(doc.get("service")), _proxy_target(doc)
    kind: VmEventKind | None = None
    detail = ""
    if _FAILED_TO_BECOME_HEALTHY in msg.lower() or _FAILED_TO_BECOME_HEALTHY in error:
        kind, detail = VmEventKind.DEPLOY_FAILED, error or msg
    elif msg in ("Deploying", "Deploying for rollout"):
        kind = VmEventKind.DEPLOYING
    elif msg in ("Deployed", "Deployed for rollout"):
        kind = VmEventKind.DEPLOYED
    elif msg == "Target health updated":
        state, was, success = _text(doc.get("state")), _text(doc.get("was")), doc.get("success")
        detail = f"was {was}" if was else (_CHECK_PASSED if success is True else "")
        if state == "healthy" and success is not False:
            kind = VmEventKind.TARGET_HEALTHY
        elif state == "unhealthy":
            kind = VmEventKind.TARGET_UNHEALTHY
    elif msg == "Healthcheck failed":
        kind, detail = VmEventKind.HEALTHCHECK_FAILED, error
        target = target or _text(doc.get("url"))
    if kind is None:
        return None
    return VmEvent(
        kind, when, host, source, service, target, _find_sha(target, service), detail, text
    )


def _agent_fields(text: str) -> tuple[str, dict[str, str]]:
    """(message, fields) of a logfmt or JSON agent line."""
    if text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            fields = {key: str(value) for key, value in doc.items() if value is not None}
            return fields.pop("msg", fields.pop("message", "")), fields
    fields = {}
    for key, value in _FIELD.findall(text):
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        fields[key] = value
    return _FIELD.sub("", text).strip(), fields


def parse_agent_line(
    text: str, at: datetime, host: str = "", source: str = AGENT_SOURCE
) -> VmEvent | None:
    """A vmkit-agent line → event, or None for lines that are not about a container."""
    message, fields = _agent_fields(text)
    lowered = message.lower()
    if "heartbeat" in lowered:  # periodic "still fine" lines say nothing about a deploy
        return None
    level = fields.get("level", "").lower()
    named = _NAMED_CONTAINER.search(message)
    if level in ("error", "fatal") or any(word in lowered for word in _AGENT_TROUBLE):
        kind = VmEventKind.AGENT_ERROR
    elif "healthy" in lowered:
        kind = VmEventKind.CONTAINER_HEALTHY
    elif "traffic flowing" in lowered:
        kind = VmEventKind.TRAFFIC_FLOWING
    elif named is not None:
        kind = VmEventKind.CONTAINER_STARTED
    else:
        return None
    container = fields.get("container", "") or (named.group(1) if named else "")
    sha = fields.get("sha", "")
    return VmEvent(
        kind,
        _moment(fields.get("time"), at),
        host,
        source,
        fields.get("service", ""),
        container,
        sha if _SHA.fullmatch(sha) else _find_sha(container, message),
        fields.get("error", "") or (message if kind is VmEventKind.AGENT_ERROR else ""),
        text,
        named.group(2)[:_ID_LENGTH] if named else "",
    )


def parse_record(record: LogRecord) -> VmEvent | None:
    """Dispatch on the record's source; other sources carry no VM events."""
    if record.source == PROXY_SOURCE:
        return parse_proxy_line(record.text, record.at, record.host, record.source)
    if record.source == AGENT_SOURCE:
        return parse_agent_line(record.text, record.at, record.host, record.source)
    return None


def parse_records(records: Iterable[LogRecord]) -> list[VmEvent]:
    events = (parse_record(record) for record in records)
    return [event for event in events if event is not None]


def _container(target: str) -> str:
    """The container a proxy target names: `host:port` without the port; an id shortened to
    docker's short form, so the agent's full or short id matches it."""
    name, _, port = target.rpartition(":")
    name = name if name and port.isdigit() else target
    if re.fullmatch(r"[0-9a-f]{12,64}", name):
        return name[:_ID_LENGTH]
    return name


class HealthWatch:
    """One deploy's first-healthy moment as VM events arrive (from any host, in any order).

    kamal-proxy decides: a target it is deploying (or, when the `Deploying` line was missed,
    one going from `adding` to `healthy`, or one whose check passed in the older format that
    logs every check: its first such line counts) marked healthy, when the target is this deploy's
    version (see Attribution above). A healthy target whose version is not known yet waits
    for the agent line that names it. The agent's earliest `container healthy` for this SHA is
    kept as `fallback`. Events before `since` (the deploy's start) are ignored."""

    def __init__(self, sha: str, *, since: datetime | None = None) -> None:
        self.sha = sha
        self.since = since
        self.first_healthy: datetime | None = None
        self.fallback: VmEvent | None = None
        self.failure: VmEvent | None = None
        self._versions: dict[tuple[str, str], str] = {}  # (host, container) → SHA
        self._ours: set[str] = set()  # container ids Kamal's own output tied to this SHA
        self._deploying: set[tuple[str, str]] = set()
        self._waiting: dict[tuple[str, str], VmEvent] = {}  # healthy, version not known yet

    def feed(self, event: VmEvent) -> VmEvent | None:
        """The event that establishes the moment, when this one is the first to (an earlier
        proxy event whose version this event told); else None."""
        if self.since is not None and event.at < self.since:
            return None
        if event.kind is VmEventKind.CONTAINER_HEALTHY:
            if event.sha == self.sha and (self.fallback is None or event.at < self.fallback.at):
                self.fallback = event
            return None
        if event.container_id and event.sha:  # the agent tying a container id to its version
            return self._learn((event.host, event.container_id), event.sha)
        if not event.target or event.source != PROXY_SOURCE:
            return None
        key = (event.host, _container(event.target))
        found = self._learn(key, event.sha) if event.sha else None
        version = self._versions.get(key) or (self.sha if key[1] in self._ours else None)
        if event.kind is VmEventKind.DEPLOYING:
            self._deploying.add(key)
        elif event.kind is VmEventKind.DEPLOY_FAILED and version == self.sha:
            self.failure = self.failure or event
        elif event.kind is VmEventKind.TARGET_HEALTHY and self._counts(key, event):
            if version is None:
                earlier = self._waiting.get(key)
                if earlier is None or event.at < earlier.at:
                    self._waiting[key] = event
            elif version == self.sha:
                return self._found(event)
        return found

    def _counts(self, key: tuple[str, str], event: VmEvent) -> bool:
        if any(host == event.host for host, _ in self._deploying):
            return key in self._deploying
        return event.detail in ("was adding", _CHECK_PASSED)

    def ours(self, container_id: str) -> VmEvent | None:
        """Kamal, deploying this version, handed `kamal-proxy deploy` this container id (on
        whichever host: Kamal names hosts its own way; 48 random bits do not collide): a healthy
        target waiting for its version counts now. Returns the event that establishes the
        moment, as `feed` does."""
        container = container_id[:_ID_LENGTH]
        self._ours.add(container)
        waiting = [self._waiting.pop(key) for key in list(self._waiting) if key[1] == container]
        return self._found(min(waiting, key=lambda event: event.at)) if waiting else None

    def _learn(self, key: tuple[str, str], sha: str) -> VmEvent | None:
        self._versions[key] = sha
        waiting = self._waiting.pop(key, None)
        return self._found(waiting) if waiting is not None and sha == self.sha else None

    def _found(self, event: VmEvent) -> VmEvent | None:
        if self.first_healthy is not None:
            return None
        self.first_healthy = event.at
        return event


def first_healthy(
    events: Iterable[VmEvent], *, sha: str, since: datetime | None = None
) -> datetime | None:
    """The deploy's first-healthy moment in a batch of events: the proxy's, else the agent's."""
    watch = HealthWatch(sha, since=since)
    for event in sorted(events, key=lambda event: event.at):
        watch.feed(event)
    if watch.first_healthy is None and watch.fallback is not None:
        return watch.fallback.at
    return watch.first_healthy
