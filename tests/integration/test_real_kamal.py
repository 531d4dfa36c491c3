"""The `kamal-ssh` strategy against the REAL Kamal (the `kamal` package's 2.11 binary) on a REAL
OpenSSH sshd: vmkit-tui SSHes to the deploy host and runs `kamal` in the project directory
there; Kamal SSHes to the app host (the same sshd) and drives `docker`, a stub that keeps
containers and images as files (tests/integration/stub_docker.py). Verdicts, "not retained",
lock parsing and the first-healthy moment are read from what real Kamal prints."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
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
from vmkit_tui.domain.updates import Broadcaster
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

    def reset(self, *, unhealthy: tuple[str, ...] = ()) -> None:
        """OLD kept as a stopped container, LIVE running, GONE/FRESH only in the registry."""
        for name in ("containers", "images", "registry"):
            shutil.rmtree(self.state / name, ignore_errors=True)
        for name in ("argv.log", "proxy.log", "unhealthy"):
            (self.state / name).unlink(missing_ok=True)
        shutil.rmtree(self.project / ".kamal" / "lock-shop", ignore_errors=True)
        (self.state / "unhealthy").write_text("\n".join(unhealthy))
        for number, sha in enumerate((OLD, LIVE, GONE, FRESH)):
            image = {"ref": f"{IMAGE}:{sha}", "id": f"{number:064x}", "labels": {"service": "shop"}}
            self._save("registry", sha, image)
            if sha in (OLD, LIVE):
                self._save("images", sha, image)
                self._save(
                    "containers",
                    f"shop-web-{sha}",
                    {
                        "id": f"{number + 7:064x}",
                        "name": f"shop-web-{sha}",
                        "image": image["ref"],
                        "image_id": image["id"],
                        "labels": {"service": "shop", "role": "web", "destination": ""},
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
                "builder:",
                "  arch: amd64",
                "ssh:",
                f"  user: {getpass.getuser()}",
                f"  port: {sshd.port}",
                f"  keys: [{sshd.user_key}]",
                "  keys_only: true",
                "",
            ]
        )
    )
    (project / ".kamal" / "secrets").write_text("KAMAL_REGISTRY_PASSWORD=not-a-real-token\n")
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

    def record(self, sha: str) -> DeployRecord:
        return next(r for r in self.history.records(REPO, "production") if r.deploy.sha == sha)

    def kamal_lines(self, deploy_id: str) -> list[str]:
        with SpoolReader(spool_path(self.data_dir, deploy_id)) as reader:
            return [line.text for line in reader if line.source == KAMAL_SOURCE]

    async def rollback(self, sha: str) -> DeployRecord:
        return await self.actions.rollback(
            REPO, "production", self.record(sha).id, trigger=Trigger.MANUAL, actor="maria-chen"
        )

    async def first_healthy(self, deploy_id: str) -> datetime:
        async with asyncio.timeout(10):
            while (record := self.history.record(deploy_id)).first_healthy_at is None:
                await asyncio.sleep(0.05)
        return record.first_healthy_at


def past_deploy(history: History, sha: str, minutes_ago: int) -> None:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    deploy = Deploy(new_deploy_id(), REPO, "production", sha, Trigger.PUSH, "octocat", at)
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
        kamal_dir=str(remote.project),
        streams={"vmkit-agent": "true"},  # no agent on this host: only kamal-proxy's log
    )
    config = Config(source=None, github=GitHubConfig(), repos=(RepoConfig(REPO, IMAGE, (env,)),))
    history = History(tmp_path / "history.json")
    for minutes_ago, sha in enumerate((LIVE, FRESH, GONE, MISSING, OLD)):
        past_deploy(history, sha, 10 + 10 * minutes_ago)
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
    assert acting.remote.running() == [f"shop-web-{OLD}"]
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
    assert acting.remote.running() == [f"shop-web-{GONE}"]
    assert await acting.first_healthy(record.id) == acting.remote.proxy_healthy_at()[-1]


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
    assert acting.remote.running() == [f"shop-web-{LIVE}"]  # the old one still serves


async def test_an_image_gone_from_ghcr_fails_at_the_pull(acting: Acting) -> None:
    record = await acting.rollback(MISSING)

    assert statuses(record) == [Status.RUNNING, Status.FAILED]
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail == "The image for this commit is no longer in GHCR"
    assert acting.remote.running() == [f"shop-web-{LIVE}"]


async def test_the_deploy_lock_from_real_kamal_lock_acquire_and_status(acting: Acting) -> None:
    assert acting.env.deploy_host is not None
    target = ssh_target(acting.env.deploy_host, acting.env)
    where = str(acting.remote.project)
    acquire = f"cd -- {shlex.quote(where)} && kamal lock acquire -m 'schema migration, wait'"
    said = await ssh.run(target, acquire, options=TEST_OPTIONS)
    assert said.lines[-1] == "Acquired the deploy lock"

    report = await lock_status(acting.env, TEST_OPTIONS)
    assert report.held is True
    assert report.details[0].startswith("Locked by: Maria Chen at ")
    assert report.details[2] == "Message: schema migration, wait"

    record = await acting.rollback(OLD)
    failed = next(e for e in record.events if e.status is Status.FAILED)
    assert failed.detail.endswith(
        "failed: ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for "
        "more information"
    )
    diagnosis = next(e for e in record.events if e.kind is EventKind.DIAGNOSIS)
    assert diagnosis.detail.startswith("Another deploy holds Kamal's deploy lock (Locked by: Maria")
    assert acting.remote.running() == [f"shop-web-{LIVE}"]

    await ssh.run(target, kamal_lock_release(workdir=where), options=TEST_OPTIONS)
    assert (await lock_status(acting.env, TEST_OPTIONS)).held is False
