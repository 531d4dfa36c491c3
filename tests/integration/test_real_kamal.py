"""The `kamal-ssh` strategy against the REAL Kamal (the `kamal` package's 2.11 binary) on a REAL
OpenSSH sshd: vmkit-tui SSHes to the deploy host and runs `kamal` in the project directory
there; Kamal SSHes to the app host (the same sshd) and drives `docker`, a stub that keeps
containers and images as files (tests/integration/stub_docker.py). Verdicts, "not retained",
lock parsing and the first-healthy moment are read from what real Kamal prints, and what the
sandbox's imitation of Kamal says for the same operation must be what real Kamal said."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import random
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.ssh_fixtures import SSHD, TEST_OPTIONS, Sshd
from vmkit_tui.actions.base import ActionTiming
from vmkit_tui.actions.deploy_actions import DeployActions
from vmkit_tui.actions.kamal_ssh import KAMAL_SOURCE, lock_status, ssh_target
from vmkit_tui.config import (
    Config,
    EnvironmentConfig,
    GitHubConfig,
    HostSpec,
    RepoConfig,
    RollbackStrategy,
)
from vmkit_tui.domain.models import (
    Deploy,
    DeployRecord,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
)
from vmkit_tui.domain.text import plain
from vmkit_tui.domain.updates import Broadcaster
from vmkit_tui.sandbox.world import kamal_output as imitation
from vmkit_tui.sandbox.world.seed_data import RUBY
from vmkit_tui.sources import ssh
from vmkit_tui.sources.ssh.commands import kamal_lock_release
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import SpoolReader, spool_path

pytestmark = [
    pytest.mark.skipif(not SSHD.exists(), reason="OpenSSH server not installed (/usr/sbin/sshd)"),
    pytest.mark.timeout(90),
]

REPO = "acme/shop"
IMAGE = "ghcr.io/acme/shop"
KAMAL = Path(sys.executable).with_name("kamal")  # the test extra's real Kamal
STUB = Path(__file__).with_name("stub_docker.py")
OLD, LIVE, GONE, FRESH, MISSING = (f"{n}" * 40 for n in "abcde")  # GONE: no container kept
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
# A destination with a role kamal-proxy does not serve (Kamal merges it into deploy.yml).
JOBS = """builder:
  arch: amd64
servers:
  web:
    - 127.0.0.1
  jobs:
    hosts:
      - 127.0.0.1
    cmd: bin/jobs
    proxy: false
readiness_delay: 0
deploy_timeout: 2
"""


SANDBOX = imitation.KamalTarget(
    "shop",
    "production",
    IMAGE,
    (imitation.KamalHost("vm1", "127.0.0.1"),),
    RUBY,
    "shop.example.com",
)
_ECHO = re.compile(r"^\s*(?:INFO|DEBUG)\b")  # SSHKit's echo of each command, and its timing


def says(lines: Iterable[str]) -> list[str]:
    """What Kamal says (not the commands it echoes), with what differs from run to run (SHAs,
    times, durations) as placeholders."""
    said = []
    for line in lines:
        text = plain(line).rstrip()
        if text.strip() and not _ECHO.match(text):
            text = re.sub(r"[0-9a-f]{40}", "<sha>", text)
            text = re.sub(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z", "<time>", text)
            said.append(
                re.sub(r"Finished all in [0-9.]+ seconds", "Finished all in N seconds", text)
            )
    return said


def sandbox_says(*scripts: imitation.KamalScript) -> list[str]:
    return says(text for script in scripts for _, text in sorted(script.console, key=_offset))


def _offset(line: tuple[float, str]) -> float:
    return line[0]


def rollback_script(
    sha: str, *, retained: bool, lock: imitation.LockInfo | None = None
) -> imitation.KamalScript:
    return imitation.rollback_script(
        random.Random(0), SANDBOX, T0, version=sha, previous=LIVE, retained=retained, lock=lock
    )


def deploy_script(sha: str, outcome: imitation.Outcome) -> imitation.KamalScript:
    return imitation.deploy_script(
        random.Random(0), SANDBOX, T0, version=sha, previous=LIVE, outcome=outcome
    )


def container(sha: str) -> str:
    return f"shop-web-production-{sha}"


@dataclass
class Remote:
    """The deploy host and app host (one sshd), its docker state and Kamal project."""

    sshd: Sshd
    state: Path
    project: Path

    def argv(self) -> list[list[str]]:
        """Every docker command real Kamal ran, in order, since the last `reset`."""
        lines = (self.state / "argv.log").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def reset(self, *, unhealthy: tuple[str, ...] = (), crashing: tuple[str, ...] = ()) -> None:
        """OLD kept as a stopped container, LIVE running, GONE/FRESH only in the registry;
        `unhealthy`: versions whose app fails kamal-proxy's check, `crashing`: whose
        containers of other roles exit at once."""
        for name in ("containers", "images", "registry"):
            shutil.rmtree(self.state / name, ignore_errors=True)
        (self.state / "argv.log").unlink(missing_ok=True)
        (self.state / "proxy.log").unlink(missing_ok=True)
        shutil.rmtree(self.project / ".kamal" / "lock-shop-production", ignore_errors=True)
        (self.state / "unhealthy").write_text("\n".join(unhealthy))
        (self.state / "crashing").write_text("\n".join(crashing))
        for number, sha in enumerate((OLD, LIVE, GONE, FRESH)):
            image = {"ref": f"{IMAGE}:{sha}", "id": f"{number:064x}", "labels": {"service": "shop"}}
            self._save("registry", sha, image)
            if sha in (OLD, LIVE):
                self._save("images", sha, image)
                self._save(
                    "containers",
                    container(sha),
                    {
                        "id": f"{number + 7:064x}",
                        "name": container(sha),
                        "image": image["ref"],
                        "image_id": image["id"],
                        "labels": {"service": "shop", "role": "web", "destination": "production"},
                        "state": "running" if sha == LIVE else "exited",
                        "created": number,
                        "log": [],
                    },
                )
        (self.state / "network").touch()

    def _save(self, folder: str, name: str, doc: dict[str, object]) -> None:
        """As the stub files them: the name (a container's, or an image's reference) with
        every character but `[A-Za-z0-9_.-]` as `_`."""
        key = name if folder == "containers" else f"{IMAGE}:{name}"
        path = self.state / folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))

    def running(self) -> list[str]:
        found = []
        for path in (self.state / "containers").glob("*.json"):
            doc = json.loads(path.read_text())
            if doc["state"] == "running" and not doc["name"].startswith("kamal-proxy"):
                found.append(doc["name"])
        return found

    def proxy_healthy_at(self) -> list[datetime]:
        """When (kamal-proxy's own time) each target was marked healthy."""
        moments = []
        for line in (self.state / "proxy.log").read_text().splitlines():
            doc = json.loads(line.split(" ", 1)[1])
            if doc["msg"] == "Target health updated":
                moments.append(datetime.fromisoformat(doc["time"]))
        return moments


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("kamal")
    bin_dir, state, project = base / "bin", base / "docker", base / "project"
    for folder in (bin_dir, state, project / "config", project / ".kamal"):
        folder.mkdir(parents=True)
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {STUB} "$@"\n')
    docker.chmod(0o755)
    (bin_dir / "kamal").symlink_to(KAMAL)
    path = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    sshd = Sshd.start(base, extra=(f"SetEnv PATH={path} STUB_DOCKER_STATE={state}",))
    (project / "config" / "deploy.yml").write_text(
        "\n".join(
            [
                "service: shop",
                "image: acme/shop",
                "servers:",
                "  web:",
                "    - 127.0.0.1",
                "registry:",
                "  server: ghcr.io",
                "  username: acme",
                "  password:",
                "    - KAMAL_REGISTRY_PASSWORD",
                "ssh:",
                f"  user: {getpass.getuser()}",
                f"  port: {sshd.port}",
                f"  keys: [{sshd.user_key}]",
                "  keys_only: true",
                "",
            ]
        )
    )
    (project / "config" / "deploy.production.yml").write_text("builder:\n  arch: amd64\n")
    (project / "config" / "deploy.jobs.yml").write_text(JOBS)
    (project / ".kamal" / "secrets-common").write_text("KAMAL_REGISTRY_PASSWORD=not-a-real-token\n")
    git = ["git", "-C", str(project), "-c", "user.email=maria@example.com"]
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run([*git, "-c", "user.name=Maria Chen", *command], check=True)
    subprocess.run([*git, "config", "user.name", "Maria Chen"], check=True)
    try:
        yield Remote(sshd, state, project)
    finally:
        sshd.stop()


@dataclass
class Acting:
    remote: Remote
    env: EnvironmentConfig
    history: History
    actions: DeployActions
    data_dir: Path

    def record(self, sha: str, environment: str) -> DeployRecord:
        return next(r for r in self.history.records(REPO, environment) if r.deploy.sha == sha)

    def kamal_lines(self, deploy_id: str) -> list[str]:
        with SpoolReader(spool_path(self.data_dir, deploy_id)) as reader:
            return [line.text for line in reader if line.source == KAMAL_SOURCE]

    async def rollback(self, sha: str, environment: str = "production") -> DeployRecord:
        target = self.record(sha, environment).id
        return await self.actions.rollback(
            REPO, environment, target, trigger=Trigger.MANUAL, actor="maria-chen"
        )

    async def first_healthy(self, deploy_id: str) -> datetime:
        async with asyncio.timeout(10):
            while (record := self.history.record(deploy_id)).first_healthy_at is None:
                await asyncio.sleep(0.05)
        return record.first_healthy_at


def past_deploy(history: History, environment: str, sha: str, minutes_ago: int) -> None:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    deploy = Deploy(new_deploy_id(), REPO, environment, sha, Trigger.PUSH, "octocat", at)
    events = [
        NewEvent(deploy.id, EventKind.CREATED, at, data={"title": f"Ship {sha[:7]}"}),
        NewEvent(deploy.id, EventKind.STATUS, at, status=Status.SUCCEEDED),
    ]
    history.create_deploy(deploy, events)


@pytest.fixture
async def acting(remote: Remote, tmp_path: Path) -> AsyncIterator[Acting]:
    remote.reset()
    host = HostSpec(getpass.getuser(), "127.0.0.1", remote.sshd.port)
    env = EnvironmentConfig(
        "production",
        rollback=RollbackStrategy.KAMAL_SSH,
        hosts=(host,),
        deploy_host=host,
        identity_file=remote.sshd.user_key,
        known_hosts=remote.sshd.known_hosts,
        service="shop",
        destination="production",
        kamal_dir=str(remote.project),
        streams={"vmkit-agent": "true"},  # no agent on this host: only kamal-proxy's log
    )
    jobs = dataclasses.replace(env, name="jobs", destination="jobs")
    repo = RepoConfig(REPO, IMAGE, (env, jobs))
    config = Config(source=None, github=GitHubConfig(), repos=(repo,))
    history = History(tmp_path / "history.json")
    for minutes_ago, sha in enumerate((LIVE, FRESH, GONE, MISSING, OLD)):
        past_deploy(history, "production", sha, 10 + 10 * minutes_ago)
        past_deploy(history, "jobs", sha, 10 + 10 * minutes_ago)
    actions = DeployActions(
        config,
        AsyncHistory(history),
        None,
        tmp_path,
        Broadcaster(),
        ssh_options=TEST_OPTIONS,
        timing=ActionTiming(vm_grace=5.0),
    )
    try:
        yield Acting(remote, env, history, actions, tmp_path)
    finally:
        await actions.aclose()


def statuses(record: DeployRecord) -> list[Status]:
    return [e.status for e in record.events if e.kind is EventKind.STATUS and e.status]


async def test_a_kept_version_goes_back_with_real_kamal_rollback(acting: Acting) -> None:
    record = await acting.rollback(OLD)

    assert statuses(record) == [Status.RUNNING, Status.SUCCEEDED], "\n".join(
        acting.kamal_lines(record.id)
    )
    finished = next(e for e in record.events if e.status is Status.SUCCEEDED)
    assert finished.detail.startswith("Kamal on 127.0.0.1:") and " finished in " in finished.detail
    sent = acting.remote.argv()
    assert ["pull", f"{IMAGE}:{OLD}"] not in sent  # a rollback never pulls
    assert any(argv[:3] == ["exec", "kamal-proxy", "kamal-proxy"] for argv in sent)
    assert acting.remote.running() == [container(OLD)]
    said = says(acting.kamal_lines(record.id))
    assert said == sandbox_says(rollback_script(OLD, retained=True))
    healthy = await acting.first_healthy(record.id)
    assert healthy == acting.remote.proxy_healthy_at()[-1]


async def test_a_version_not_kept_is_deployed_from_its_image(acting: Acting) -> None:
    record = await acting.rollback(GONE)

    assert statuses(record) == [Status.RUNNING, Status.SUCCEEDED], record.events
    notes = [e.detail for e in record.events if e.kind is EventKind.NOTE]
    assert any("not kept as a container" in note for note in notes)
    lines = acting.kamal_lines(record.id)
    assert any(f"The app version '{GONE}' is not available as a container" in x for x in lines)
    assert ["pull", f"{IMAGE}:{GONE}"] in acting.remote.argv()
    assert acting.remote.running() == [container(GONE)]
    assert await acting.first_healthy(record.id) == acting.remote.proxy_healthy_at()[-1]
    rollback, deploy = (
        rollback_script(GONE, retained=False),
        deploy_script(GONE, imitation.Outcome.SUCCESS),
    )
    assert says(lines) == sandbox_says(rollback, deploy)


async def test_an_unhealthy_version_fails_with_kamals_red_error_read_plainly(
    acting: Acting,
) -> None:
    acting.remote.reset(unhealthy=(OLD,))
    record = await acting.rollback(OLD)

    assert statuses(record) == [Status.RUNNING, Status.FAILED]
    failed = next(e for e in record.events if e.status is Status.FAILED)
    assert failed.detail == (
        "Kamal on 127.0.0.1:"
        f"{acting.remote.sshd.port} failed: ERROR (SSHKit::Command::Failed): Exception while "
        "executing on host 127.0.0.1: docker exit status: 1"
    )
    assert any("\x1b[31m" in line for line in acting.kamal_lines(record.id))  # it was red
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail.startswith("Health check timed out: the app listens on 127.0.0.1:80")
    assert "0.0.0.0:$PORT" in diagnosis.data["fix"]
    assert acting.remote.running() == [container(LIVE)]  # the old one still serves


async def test_an_image_gone_from_ghcr_fails_at_the_pull(acting: Acting) -> None:
    record = await acting.rollback(MISSING)

    assert statuses(record) == [Status.RUNNING, Status.FAILED]
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail == "The image for this commit is no longer in GHCR"
    assert acting.remote.running() == [container(LIVE)]
    rollback = rollback_script(MISSING, retained=False)
    deploy = deploy_script(MISSING, imitation.Outcome.IMAGE_MISSING)
    assert says(acting.kamal_lines(record.id)) == sandbox_says(rollback, deploy)


async def test_the_deploy_lock_from_real_kamal_lock_acquire_and_status(acting: Acting) -> None:
    assert acting.env.deploy_host is not None
    target = ssh_target(acting.env.deploy_host, acting.env)
    where = str(acting.remote.project)
    acquire = f"cd -- {shlex.quote(where)} && kamal lock acquire -d production -m 'migrating'"
    said = await ssh.run(target, acquire, options=TEST_OPTIONS)
    assert said.lines[-1] == "Acquired the deploy lock"

    report = await lock_status(acting.env, TEST_OPTIONS)
    assert report.held is True
    assert report.details[0].startswith("Locked by: Maria Chen at ")
    assert report.details[2] == "Message: migrating"
    lock = imitation.LockInfo("Maria Chen", T0, OLD, "migrating")
    assert says(report.details) == sandbox_says(
        imitation.lock_status_script(random.Random(0), SANDBOX, T0, lock)
    )

    record = await acting.rollback(OLD)
    failed = next(e for e in record.events if e.status is Status.FAILED)
    assert failed.detail.endswith(
        "failed: ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for "
        "more information"
    )
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail.startswith("Another deploy holds Kamal's deploy lock (Locked by: Maria")
    assert acting.remote.running() == [container(LIVE)]
    held = rollback_script(OLD, retained=True, lock=lock)
    assert says(acting.kamal_lines(record.id)) == sandbox_says(held)

    release = kamal_lock_release(destination="production", workdir=where)
    said = await ssh.run(target, release, options=TEST_OPTIONS)
    rng = random.Random(0)
    assert says(said.lines) == sandbox_says(imitation.lock_release_script(rng, SANDBOX, T0, lock))
    report = await lock_status(acting.env, TEST_OPTIONS)
    assert report.held is False and report.message.startswith("No Kamal deploy lock is held")


async def test_a_role_without_kamal_proxy_that_crashes_gets_advice_about_its_process(
    acting: Acting,
) -> None:
    acting.remote.reset(crashing=(FRESH,))
    record = await acting.rollback(FRESH, "jobs")

    assert statuses(record) == [Status.RUNNING, Status.FAILED]
    failed = next(e for e in record.events if e.status is Status.FAILED)
    assert failed.detail.endswith(
        "failed: ERROR (Kamal::Cli::Healthcheck::Error): Exception while executing on host "
        "127.0.0.1: container not ready after 2 seconds (exited)"
    )
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail == (
        "The jobs role's container without kamal-proxy was not running after 2 s: its process "
        "exited"
    )
    fix = diagnosis.data["fix"]
    assert "`kamal app logs -r jobs`" in fix and "0.0.0.0" not in fix and "/up" not in fix
