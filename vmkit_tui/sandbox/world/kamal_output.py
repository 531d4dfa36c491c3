"""Kamal 2 console output and what the VMs print while Kamal works, as timed scripts.

A `KamalScript` is everything one Kamal invocation does, as offsets in simulated seconds from its
start: the console lines Kamal prints (they end up in the GitHub job log, or on the SSH channel
of the `kamal-ssh` strategy) and the events on each VM (kamal-proxy JSON log lines, vmkit-agent
journal lines, the app container's own output, containers started/stopped, traffic switched).
The world turns offsets into moments and cuts the script short when a run is cancelled.

Strings are those Kamal 2.12 and kamal-proxy print: SSHKit's `INFO [id] Running … on HOST`,
`Finished all in N seconds` before the `ERROR (…)` line, which bin/kamal colours red even into a
pipe (`  ESC[31mERROR (…): …ESC[0m`, the reset after the message's last line), kamal-proxy's
slog JSON (`Deploying`, `Healthcheck failed`, `Target health updated`, `Deployed`; a timed-out
deploy is not logged by kamal-proxy: its CLI's error reaches Kamal's output), GHCR's
`manifest unknown` for a deleted tag.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from vmkit_tui.sandbox.world.seed_data import Stack

DEPLOY_TIMEOUT = 30  # seconds; Kamal's default deploy_timeout → kamal-proxy --deploy-timeout
PROXY_IP = "172.18.0.2"
RED, RESET = "\x1b[31m", "\x1b[0m"  # kamal-proxy's address on the `kamal` docker network


class Outcome(StrEnum):
    """How a Kamal invocation ends."""

    SUCCESS = "success"
    HEALTH_TIMEOUT = "health_timeout"
    SSH_UNREACHABLE = "ssh_unreachable"
    SSH_AUTH_FAILED = "ssh_auth_failed"
    LOCK_HELD = "lock_held"
    IMAGE_MISSING = "image_missing"  # deploy --skip-push of a SHA whose image is gone from GHCR


class VmEventKind(StrEnum):
    LINE = "line"
    CONTAINER_STARTED = "container_started"
    CONTAINER_STOPPED = "container_stopped"
    LIVE = "live"  # kamal-proxy switched traffic to this version


@dataclass(frozen=True, slots=True)
class KamalHost:
    vm: str
    address: str


@dataclass(frozen=True, slots=True)
class LockInfo:
    holder: str
    since: datetime
    version: str
    message: str


@dataclass(frozen=True, slots=True)
class KamalTarget:
    """One Kamal destination: service, image, hosts (the first is the primary/deploy host)."""

    service: str
    destination: str
    image: str
    hosts: tuple[KamalHost, ...]
    stack: Stack
    public_host: str

    def container_name(self, version: str) -> str:
        return f"{self.service}-web-{self.destination}-{version}"

    @property
    def proxy_service(self) -> str:
        return f"{self.service}-web-{self.destination}"


@dataclass(frozen=True, slots=True)
class VmEvent:
    vm: str
    offset: float
    kind: VmEventKind
    source: str = ""  # for LINE: "kamal-proxy" | "vmkit-agent" | "app"
    text: str = ""
    container: str = ""
    sha: str = ""


@dataclass(slots=True)
class KamalScript:
    console: list[tuple[float, str]] = field(default_factory=list)
    vm_events: list[VmEvent] = field(default_factory=list)
    swap_offset: float | None = None  # `kamal-proxy deploy` sent on the primary host
    healthy_offset: float | None = None  # first healthy response of the new container
    duration: float = 0.0
    exit_status: int = 0


def go_time(moment: datetime, rng: random.Random) -> str:
    """Go's RFC 3339 nano form as slog's JSON handler writes it."""
    nanos = moment.microsecond * 1000 + rng.randrange(1000)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}".rstrip("0") + "Z"


def proxy_line(
    moment: datetime, rng: random.Random, msg: str, level: str = "INFO", **attrs: object
) -> str:
    record: dict[str, object] = {"time": go_time(moment, rng), "level": level, "msg": msg}
    record.update(attrs)
    return json.dumps(record, separators=(",", ":"))


def request_line(stack: Stack, rng: random.Random, *, path: str, status: int = 200) -> str:
    """One access-log line of the app, as its framework prints it."""
    return stack.request_line.format(
        ip=PROXY_IP,
        port=rng.randrange(32768, 60999),
        path=path,
        status=status,
        ms=rng.randrange(2, 60),
        rid=f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}",
        views=f"{rng.uniform(0.5, 20):.1f}",
        ar=f"{rng.uniform(0.1, 8):.1f}",
    )


class _Builder:
    """Accumulates a script while a cursor `t` walks forward through simulated seconds."""

    def __init__(self, rng: random.Random, target: KamalTarget, start: datetime) -> None:
        self.rng = rng
        self.target = target
        self.start = start  # only for the timestamps printed inside lines (docker logs, JSON)
        self.t = 0.0
        self.script = KamalScript()
        self.primary_app_log: list[tuple[float, str]] = []

    def moment(self, offset: float) -> datetime:
        return self.start + timedelta(seconds=offset)

    # -- console -----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.script.console.append((self.t, text))
        self.t += self.rng.uniform(0.001, 0.02)

    def ident(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"

    def run(self, host: KamalHost, command: str, low: float, high: float, status: int = 0) -> float:
        """`Running …` at the cursor, `Finished in …` after a random duration (returned)."""
        ident = self.ident()
        duration = self.rng.uniform(low, high)
        verdict = "successful" if status == 0 else "failed"
        self.script.console.append(
            (self.t, f"  INFO [{ident}] Running {command} on {host.address}")
        )
        self.script.console.append(
            (
                self.t + duration,
                f"  INFO [{ident}] Finished in {duration:.3f} seconds with exit status "
                f"{status} ({verdict}).",
            )
        )
        return duration

    def run_all(self, command: str, low: float, high: float, status: int = 0) -> None:
        """The same command on every host in parallel (SSHKit's default), then move on."""
        longest = max(self.run(host, command, low, high, status) for host in self.target.hosts)
        self.t += longest + self.rng.uniform(0.01, 0.08)

    def started(self, host: KamalHost, command: str) -> None:
        """A command Kamal runs without a `Finished` line in the default output."""
        self.script.console.append(
            (self.t, f"  INFO [{self.ident()}] Running {command} on {host.address}")
        )

    def finish(self, error: str = "", status: int = 0) -> KamalScript:
        self.t += self.rng.uniform(0.01, 0.05)
        # print_runtime runs in an `ensure`: its line comes before bin/kamal's ERROR line.
        self.say(f"  Finished all in {self.t + self.rng.uniform(0.8, 1.6):.1f} seconds")
        if error:
            error = f"  {RED}{error.lstrip()}{RESET}"
        *lines, last = error.splitlines() or [""]
        for line in lines:
            self.say(line)
        if last == RESET:  # the message ended with a newline: the reset is a line of its own
            self.script.console.append((self.t, last))
        elif last:
            self.say(last)
        self.script.duration = self.t
        self.script.exit_status = status
        return self.script

    # -- VM side -----------------------------------------------------------------------------
    def vm_line(
        self, host: KamalHost, source: str, offset: float, text: str, container: str = ""
    ) -> None:
        self.script.vm_events.append(
            VmEvent(host.vm, offset, VmEventKind.LINE, source, text, container)
        )

    def vm_event(
        self, host: KamalHost, offset: float, kind: VmEventKind, container: str, sha: str
    ) -> None:
        self.script.vm_events.append(VmEvent(host.vm, offset, kind, container=container, sha=sha))

    def proxy(
        self, host: KamalHost, offset: float, msg: str, level: str = "INFO", **attrs: object
    ) -> None:
        line = proxy_line(self.moment(offset), self.rng, msg, level, **attrs)
        self.vm_line(host, "kamal-proxy", offset, line)


def _ssh_error(outcome: Outcome, host: KamalHost) -> str:
    if outcome is Outcome.SSH_AUTH_FAILED:
        return (
            "  ERROR (Net::SSH::AuthenticationFailed): Exception while executing on host "
            f"{host.address}: Authentication failed for user deploy@{host.address}"
        )
    return (
        "  ERROR (Net::SSH::ConnectionTimeout): Exception while executing on host "
        f"{host.address}: Net::SSH::ConnectionTimeout"
    )


def _command_failed(host: KamalHost, stderr: str) -> str:
    """SSHKit's message ends with docker's stderr, newline included."""
    return (
        f"  ERROR (SSHKit::Command::Failed): Exception while executing on host {host.address}: "
        f"docker exit status: 1\ndocker stdout: Nothing written\ndocker stderr: {stderr}\n"
    )


def lock_details(lock: LockInfo) -> list[str]:
    """`kamal lock status` body (the lock's `details` file, decoded)."""
    return [
        f"Locked by: {lock.holder} at {lock.since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"Version: {lock.version}",
        f"Message: {lock.message}",
    ]


def _deploy_one_host(
    b: _Builder, host: KamalHost, version: str, previous: str | None, healthy: bool
) -> float:
    """Start the new container on `host` and run `kamal-proxy deploy`; returns when it ends."""
    target, rng = b.target, b.rng
    name = target.container_name(version)
    port = target.stack.app_port
    cid = f"{rng.getrandbits(48):012x}"
    ip = f"172.18.0.{rng.randrange(3, 250)}"
    run_cmd = (
        f"docker run --detach --restart unless-stopped --name {name} --network kamal "
        f"--hostname {host.address}-{rng.getrandbits(48):012x} "
        f'--env KAMAL_CONTAINER_NAME="{name}" --env KAMAL_VERSION="{version}" '
        f'--env KAMAL_HOST="{host.address}" --env KAMAL_DESTINATION="{target.destination}" '
        f"--env-file .kamal/apps/{target.service}-{target.destination}/env/roles/web.env "
        f'--log-opt max-size="10m" --label service="{target.service}" --label role="web" '
        f'--label destination="{target.destination}" {target.image}:{version}'
    )
    started = b.t + b.run(host, run_cmd, 0.4, 1.1)
    b.vm_event(host, started, VmEventKind.CONTAINER_STARTED, name, version)
    b.vm_line(host, "vmkit-agent", started + 0.2, f"watching new container {name} ({cid})")
    # The app boots and prints where it listens: 127.0.0.1 is the health-timeout bug.
    ready = started + rng.uniform(1.5, 6.0)
    bind = "0.0.0.0" if healthy else "127.0.0.1"
    boot_lines = [*target.stack.boot_lines, target.stack.listen_line.format(addr=bind)]
    for index, line in enumerate(boot_lines):
        at = started + (ready - started) * (index + 1) / len(boot_lines)
        b.vm_line(host, "app", at, line, name)
        if host == target.hosts[0]:
            b.primary_app_log.append((at, line))
    sent = started + rng.uniform(0.15, 0.4)
    if host == target.hosts[0]:
        b.script.swap_offset = sent
    b.script.console.append(
        (
            sent,
            f"  INFO [{b.ident()}] Running docker exec kamal-proxy kamal-proxy deploy "
            f'{target.proxy_service} --target="{cid}:{port}" --host="{target.public_host}" '
            f'--tls --deploy-timeout="{DEPLOY_TIMEOUT}s" --drain-timeout="30s" '
            '--buffer-requests --buffer-responses --log-request-header="Cache-Control" '
            '--log-request-header="Last-Modified" --log-request-header="User-Agent" '
            f"on {host.address}",
        )
    )
    attrs: dict[str, object] = {
        "service": target.proxy_service,
        "targets": [f"{cid}:{port}"],
        "hosts": [target.public_host],
        "paths": ["/"],
        "tls": True,
    }
    b.proxy(host, sent, "Deploying", "INFO", **attrs)
    url = f"http://{cid}:{port}/up"
    failure = f'Get "{url}": dial tcp {ip}:{port}: connect: connection refused'
    check = sent
    give_up = sent + DEPLOY_TIMEOUT
    while check < (ready if healthy else give_up):
        b.proxy(host, check, "Healthcheck failed", url=url, error=failure)
        check += 1.0
    if not healthy:
        old = target.container_name(previous) if previous else "the previous container"
        b.vm_line(
            host,
            "vmkit-agent",
            give_up + 0.5,
            f"new container {name} never became healthy within {DEPLOY_TIMEOUT}s; traffic stays on {old}",
        )
        return give_up
    b.vm_line(host, "app", check, request_line(target.stack, rng, path="/up"), name)
    b.proxy(
        host, check, "Target health updated", target=f"{cid}:{port}", state="healthy", was="adding"
    )
    b.vm_event(host, check, VmEventKind.LIVE, name, version)
    if host == target.hosts[0]:
        b.script.healthy_offset = check
    b.vm_line(
        host,
        "vmkit-agent",
        check + 0.4,
        f"new container {name} is healthy: GET /up 200 in {rng.randrange(3, 25)}ms",
    )
    deployed = check + rng.uniform(0.3, 2.5)  # the old target drains, then "Deployed"
    b.proxy(host, deployed, "Deployed", "INFO", **attrs)
    b.vm_line(
        host,
        "vmkit-agent",
        deployed + 1.5,
        f"traffic flowing to {name}: {rng.randrange(20, 400)} requests in 5s, 0 errors",
    )
    b.script.console.append(
        (
            deployed,
            f"  INFO [{b.ident()}] Finished in {deployed - sent:.3f} seconds with exit status 0 (successful).",
        )
    )
    return deployed


def _boot(
    b: _Builder, version: str, previous: str | None, healthy: bool, *, replacing: bool = False
) -> bool:
    """`kamal app boot` on every host; returns whether the new version went live. `replacing`:
    a container of the version exists (a rollback): Kamal renames it and boots a new one."""
    target, rng = b.target, b.rng
    name = target.container_name(version)
    primary = target.hosts[0]
    b.say(f"Start container with version {version} (or reboot if already running)...")
    b.run_all(f"docker container ls --all --filter 'name=^{name}$' --quiet", 0.05, 0.2)
    if replacing:
        aside = f"{version}_replaced_{rng.getrandbits(64):016x}"
        renaming = f"  INFO Renaming container {version} to {aside} as already deployed on"
        for host in target.hosts:
            b.say(f"{renaming} {host.address}")
        b.run_all(
            f"docker rename {name} {target.service}-web-{target.destination}-{aside}", 0.1, 0.3
        )
    begin = b.t
    ends = []
    for host in target.hosts:  # hosts boot in parallel: each starts at the same cursor
        b.t = begin
        ends.append(_deploy_one_host(b, host, version, previous, healthy))
    b.t = max(ends) + rng.uniform(0.02, 0.1)
    if not healthy:
        b.say(f" ERROR Failed to boot web on {primary.address}")
        b.say(
            f"  INFO First web container is unhealthy on {primary.address}, not booting any other roles"
        )
        b.t += b.run(
            primary,
            f"docker container ls --all --filter 'name=^{name}$' --quiet | xargs docker logs --timestamps 2>&1",
            0.05,
            0.15,
        )
        for index, (at, line) in enumerate(b.primary_app_log):
            stamp = go_time(b.moment(at), rng)
            b.say(f" ERROR {stamp} {line}" if index == 0 else f"{stamp} {line}")
        b.t += b.run(
            primary,
            f"docker container ls --all --filter 'name=^{name}$' --quiet | xargs docker inspect "
            "--format '{{json .State.Health}}'",
            0.05,
            0.15,
        )
        b.say(" ERROR null")
        stop = b.t + b.run(
            primary,
            f"docker container ls --all --filter 'name=^{name}$' --quiet | xargs docker stop",
            0.3,
            1.5,
        )
        for host in target.hosts:
            b.vm_event(host, stop, VmEventKind.CONTAINER_STOPPED, name, version)
        b.t = stop + 0.05
        return False
    b.say(f"  INFO First web container is healthy on {primary.address}, booting any other roles")
    if previous is not None and previous != version:
        old = target.container_name(previous)
        for host in target.hosts:
            b.started(
                host,
                f"docker container ls --all --filter 'name=^{old}$' --quiet | xargs docker stop",
            )
        stop = b.t + rng.uniform(0.3, 1.2)
        for host in target.hosts:
            b.vm_event(host, stop, VmEventKind.CONTAINER_STOPPED, old, previous)
            b.vm_line(
                host, "vmkit-agent", stop + 0.2, f"container {old} stopped (kept for rollback)"
            )
        b.t = stop + 0.05
    for host in target.hosts:
        b.started(
            host, f"docker tag {target.image}:{version} {target.image}:latest-{target.destination}"
        )
    b.t += rng.uniform(0.1, 0.4)
    return True


def _acquire_lock(b: _Builder, lock: LockInfo | None) -> bool:
    b.say("Acquiring the deploy lock...")
    if lock is None:
        return True
    b.say("Deploy lock already in place!")
    for line in lock_details(lock):
        b.say(line)
    return False


LOCK_ERROR = (
    "  ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more information"
)


def deploy_script(
    rng: random.Random,
    target: KamalTarget,
    start: datetime,
    *,
    version: str,
    previous: str | None,
    outcome: Outcome,
    lock: LockInfo | None = None,
) -> KamalScript:
    """`kamal deploy --skip-push --version VERSION`: pull, lock, proxy, boot, prune, unlock."""
    b = _Builder(rng, target, start)
    primary = target.hosts[0]
    b.t = rng.uniform(0.3, 0.9)  # Ruby boots, Kamal reads config/deploy.yml
    b.say("Pull app image...")
    login = "docker login ghcr.io -u [REDACTED] -p [REDACTED]"
    if outcome in (Outcome.SSH_UNREACHABLE, Outcome.SSH_AUTH_FAILED):
        b.started(primary, login)
        b.t += (
            rng.uniform(28.0, 31.0) if outcome is Outcome.SSH_UNREACHABLE else rng.uniform(0.5, 1.5)
        )
        return b.finish(_ssh_error(outcome, primary), status=1)
    b.run_all(login, 0.6, 2.8)
    b.run_all(f"docker image rm --force {target.image}:{version}", 0.1, 0.3)
    if outcome is Outcome.IMAGE_MISSING:
        b.started(primary, f"docker pull {target.image}:{version}")
        b.t += rng.uniform(0.8, 2.5)
        stderr = "Error response from daemon: manifest unknown"
        return b.finish(_command_failed(primary, stderr), status=1)
    b.run_all(f"docker pull {target.image}:{version}", 3.0, 12.0)
    b.run_all(
        f"docker inspect -f '{{{{ .Config.Labels.service }}}}' {target.image}:{version} | grep -x "
        f"{target.service} || (echo \"Image {target.image}:{version} is missing the 'service' label\" "
        "&& exit 1)",
        0.08,
        0.15,
    )
    b.run_all("/usr/bin/env mkdir -p .kamal", 0.05, 0.12)
    if not _acquire_lock(b, lock if outcome is Outcome.LOCK_HELD else None):
        return b.finish(LOCK_ERROR, status=1)
    b.say("Ensure kamal-proxy is running...")
    b.run_all("docker network create kamal", 0.1, 0.2, status=1)  # "already exists", rescued
    b.run_all(login, 0.5, 1.0)
    b.run_all(
        "docker inspect kamal-proxy --format '{{.Config.Image}}' | awk -F: '{print $NF}'",
        0.08,
        0.12,
    )
    b.run_all("docker container start kamal-proxy || docker run --name kamal-proxy …", 0.2, 0.4)
    b.say("Detect stale containers...")
    b.run_all(
        f"docker ps --filter label=service={target.service} --filter label=destination={target.destination} "
        f'--filter label=role=web --format "{{{{.Names}}}}" | while read line; do echo '
        f"${{line#{target.proxy_service}-}}; done",
        0.1,
        0.15,
    )
    live = _boot(b, version, previous, healthy=outcome is Outcome.SUCCESS)
    if not live:
        b.say("Releasing the deploy lock...")
        stderr = (
            f"Error: target failed to become healthy within configured timeout ({DEPLOY_TIMEOUT}s)"
        )
        return b.finish(_command_failed(primary, stderr), status=1)
    b.say("Prune old containers and images...")
    for host in target.hosts:
        b.started(
            host,
            f"docker ps -q -a --filter label=service={target.service} --filter status=created "
            "--filter status=exited --filter status=dead | tail -n +6 | while read container_id; do "
            "docker rm $container_id; done",
        )
        b.started(host, f"docker image prune --force --filter label=service={target.service}")
    b.t += rng.uniform(0.5, 1.5)
    b.say("Releasing the deploy lock...")
    return b.finish()


def rollback_script(
    rng: random.Random,
    target: KamalTarget,
    start: datetime,
    *,
    version: str,
    previous: str | None,
    retained: bool,
    lock: LockInfo | None = None,
) -> KamalScript:
    """`kamal rollback VERSION`: boots a retained (stopped) container; never pulls."""
    b = _Builder(rng, target, start)
    b.t = rng.uniform(0.3, 0.9)
    b.run_all("/usr/bin/env mkdir -p .kamal", 0.05, 0.12)
    if not _acquire_lock(b, lock):
        return b.finish(LOCK_ERROR, status=1)
    name = target.container_name(version)
    b.run_all(f"docker container ls --all --filter 'name=^{name}$' --quiet", 0.08, 0.15)
    if not retained:
        b.say(
            f"Error looking for container version {version}: Exception while executing on host "
            f"{target.hosts[0].address}: Container not found"
        )
        b.say(
            f"The app version '{version}' is not available as a container "
            "(use 'kamal app containers' for available versions)"
        )
    else:
        _boot(b, version, previous, healthy=True, replacing=True)
    b.say("Releasing the deploy lock...")
    return b.finish()  # exit 0 even when the version was missing: Kamal raises nothing


def lock_status_script(
    rng: random.Random, target: KamalTarget, start: datetime, lock: LockInfo | None
) -> KamalScript:
    """Only the lock's details or "There is no deploy lock" (no `Finished all in`: only the
    commands that change the servers time themselves)."""
    b = _Builder(rng, target, start)
    b.t = rng.uniform(0.3, 0.65)
    if lock is None:
        b.say("There is no deploy lock")
    else:
        for line in lock_details(lock):
            b.say(line)
    b.script.duration = b.t
    return b.script


def lock_release_script(
    rng: random.Random, target: KamalTarget, start: datetime, lock: LockInfo | None
) -> KamalScript:
    """One line: the release's `rm -r` runs at debug level, and no `Finished all in`."""
    b = _Builder(rng, target, start)
    b.t = rng.uniform(0.3, 0.9)
    b.say("There is no deploy lock" if lock is None else "Released the deploy lock")
    b.script.duration = b.t
    return b.script


def heartbeat_line(
    rng: random.Random, target: KamalTarget, moment: datetime, container: str, source: str
) -> str:
    """An idle-time line from `source` on a VM serving `container`: keeps follow streams alive."""
    ms = rng.randrange(4, 90)
    path = rng.choice(("/", "/up", "/products", "/api/items", "/invoices", "/cart"))
    if source == "app":
        return request_line(target.stack, rng, path=path)
    if source == "kamal-proxy":
        return proxy_line(
            moment,
            rng,
            "Request",
            host=target.public_host,
            port=443,
            path=path,
            request_id=f"{rng.getrandbits(128):032x}",
            status=200,
            service=target.proxy_service,
            target=f"{container}:{target.stack.app_port}",
            duration=ms * 1_000_000 + rng.randrange(1_000_000),
            method="GET",
            client_addr=f"198.51.100.{rng.randrange(1, 254)}",
            proto="HTTP/2.0",
            scheme="https",
        )
    return (
        f"heartbeat: {container} healthy, serving traffic: {rng.randrange(30, 900)} req/min, "
        f"p50 {ms}ms, 0 errors"
    )
