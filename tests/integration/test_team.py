"""The team history: two (or three) laptops, each with its own history file and data folder, on
one sandbox GitHub over real HTTP. Every action runs as a real `python -m vmkit_tui` process
(its own user name), and "one polling round" is one `vmkit-tui deploys` (it syncs once, then
prints): what one machine did must be in the other's history after that one round."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.cli_sandbox import REPO, ROOT, Run, Sandbox, child_env, run_vmkit, sandbox
from vmkit_tui.domain.deployments import PAYLOAD_KEY as KEY
from vmkit_tui.domain.deployments import mirrors, needs_sharing
from vmkit_tui.domain.models import DeployRecord, EventKind, Status
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.sandbox.demo import write_private
from vmkit_tui.sandbox.servers.github_server import GitHubSandbox
from vmkit_tui.sandbox.world.github import Run as WorldRun
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.store.history import History

SPEED = 6.0  # simulated seconds per real second: a sandbox deploy takes some real seconds
ENV = "staging"
WAIT_S = 90.0


@dataclass
class Machine:
    """One laptop: a config (its own history and data folder), a user name."""

    user: str
    config_path: Path
    history_path: Path

    def args(self, *argv: str) -> list[str]:
        return ["--config", str(self.config_path), *argv]

    def env(self) -> dict[str, str]:
        return child_env() | {"USER": self.user, "LOGNAME": self.user}

    def run(self, *argv: str, timeout: float = 120.0) -> Run:
        return run_vmkit(self.args(*argv), env=self.env(), timeout=timeout)

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "vmkit_tui", *self.args(*argv)],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sync(self) -> list[DeployRecord]:
        """One polling round (`deploys` syncs once), then the history as this machine has it."""
        done = self.run("deploys", REPO, ENV, "--json")
        assert done.code == 0, done.err
        return self.records()

    def records(self) -> list[DeployRecord]:
        if not self.history_path.exists():
            return []
        return newest_first(History(self.history_path).records(REPO, ENV))

    def record(self, deploy_id: str) -> DeployRecord | None:
        return next((r for r in self.records() if r.id == deploy_id), None)


def _machine(
    text: str,
    folder: Path,
    user: str,
    *,
    token: str | None = None,
    kamal: bool = False,
    name: str = "vmkit.toml",
) -> Machine:
    history = folder / "history.json"
    text = re.sub(r'(?m)^history = ".*"$', f'history = "{history}"', text)
    text = re.sub(r'(?m)^data_dir = ".*"$', f'data_dir = "{folder}"', text)
    text = text.replace("[github]\n", "[github]\nshare = true\n", 1)
    if token is not None:
        text = re.sub(r'(?m)^token = "[^"]*"', f'token = "{token}"', text)
    if kamal:
        text = text.replace(
            f"[repos.environments.{ENV}]\n", f'[repos.environments.{ENV}]\nrollback = "kamal-ssh"\n'
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_private(path, text)
    return Machine(user, path, history)


@dataclass
class Team:
    box: Sandbox
    text: str
    root: Path
    a: Machine
    b: Machine

    def machine(self, name: str, user: str, **options: object) -> Machine:
        return _machine(self.text, self.root / name, user, **options)  # type: ignore[arg-type]

    def kamal_a(self) -> Machine:
        """A again (same history and data folder), its staging rolled back with Kamal over SSH."""
        folder = self.a.config_path.parent
        kamal = _machine(self.text, folder, "alice", kamal=True, name="kamal.toml")
        kamal.history_path = self.a.history_path
        return kamal

    def github(self, action: Callable[[GitHubSandbox], object]) -> object:
        return self.box.runtime.on_github(action)

    def dispatches(self) -> int:
        return self.box.runtime.dispatch_requests()

    def requests(self, method: str, suffix: str) -> int:
        def count(github: GitHubSandbox) -> int:
            return sum(1 for r in github.requests if r.method == method and r.path.endswith(suffix))

        found = self.github(count)
        assert isinstance(found, int)
        return found


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    """A sandbox whose past A has recorded (as `demo` does); B starts with an empty history."""
    with sandbox(tmp_path / "a", speed=SPEED) as box:
        text = box.config_path.read_text()
        a = _machine(text, tmp_path / "a", "alice")
        a.history_path = box.config.history_path or a.history_path
        b = _machine(text, tmp_path / "b", "bob")
        yield Team(box, text, tmp_path, a, b)


def statuses(record: DeployRecord) -> list[Status | None]:
    return [e.status for e in record.events if e.kind is EventKind.STATUS]


def until(what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Wait for a condition one machine's sync makes true (each check is a real round)."""
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"


def rollback(machine: Machine, *extra: str) -> tuple[Run, dict[str, object] | None]:
    done = machine.run("rollback", REPO, ENV, "--yes", "--json", *extra)
    body = json.loads(done.out) if done.code == 0 and done.out.strip() else None
    return done, body


def test_a_rollback_on_a_appears_on_b_with_the_same_facts_and_statuses(team: Team) -> None:
    done, body = rollback(team.a)
    assert done.code == 0, done.err
    assert body is not None
    deploy_id = str(body["id"])
    seen = {r.id: r for r in team.b.sync()}  # one polling round on B
    assert deploy_id in seen
    mine, theirs = team.a.record(deploy_id), seen[deploy_id]
    assert mine is not None
    for field in ("id", "sha", "actor", "triggered_by", "rollback_of", "created_at"):
        assert getattr(theirs.deploy, field) == getattr(mine.deploy, field), field
    assert theirs.deploy.actor == "alice"

    def both_final() -> bool:
        a, b = team.a.record(deploy_id), team.b.record(deploy_id)
        team.a.sync(), team.b.sync()
        return a is not None and b is not None and a.status.is_final and b.status.is_final

    until("the rollback to finish on both", both_final)
    mine, theirs = team.a.record(deploy_id), team.b.record(deploy_id)
    assert mine is not None and theirs is not None
    assert statuses(theirs) == statuses(mine)
    assert mine.status is Status.SUCCEEDED and not needs_sharing(mine)


def test_a_kamal_ssh_rollback_on_a_appears_on_b(team: Team) -> None:
    a = team.kamal_a()
    done, body = rollback(a)
    assert done.code == 0, done.err
    assert body is not None and body["status"] == "succeeded"  # Kamal ran to its end here
    deploy_id = str(body["id"])
    theirs = next((r for r in team.b.sync() if r.id == deploy_id), None)
    assert theirs is not None  # no GitHub run at all: only the deployment says it happened
    assert theirs.deploy.rollback_of == body["rollback_of"]
    assert theirs.status is Status.SUCCEEDED and theirs.run_id is None


def test_a_cancel_on_b_is_seen_on_a(team: Team) -> None:
    done, body = rollback(team.a)
    assert done.code == 0 and body is not None, done.err
    deploy_id = str(body["id"])
    assert deploy_id in {r.id for r in team.b.sync()}
    cancelled = team.b.run("cancel", REPO, ENV, deploy_id, "--yes")
    assert cancelled.code == 0, cancelled.err
    mine = next(r for r in team.a.sync() if r.id == deploy_id)
    assert mine.cancel_requested
    requested = next(e for e in mine.events if e.kind is EventKind.CANCEL_REQUESTED)
    assert "bob" in requested.detail


def test_two_people_pressing_r_at_once_start_one_rollback(team: Team) -> None:
    team.b.sync()
    before = team.dispatches()
    args = ("rollback", REPO, ENV, "--yes")
    first = team.a.start(*args)
    second = team.b.start(*args)  # well within 100 ms of the first
    outs = [(p.wait(120), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in outs)
    assert codes == [0, 1], outs
    assert team.dispatches() - before == 1
    refused = next(err for code, _, err in outs if code == 1)
    winner = "alice" if refused is outs[1][2] else "bob"
    assert f"{winner} is already deploying {ENV}" in refused
    assert "nothing was sent" in refused


def test_a_read_only_token_is_local_only_said_once_without_a_write_loop(team: Team) -> None:
    from vmkit_tui.sandbox.servers.github_deployments import SANDBOX_READONLY_TOKEN

    reader = team.machine("c", "carol", token=SANDBOX_READONLY_TOKEN)
    reader.sync()
    done, body = rollback(reader)
    assert done.code == 0, done.err  # the rollback itself goes out
    assert body is not None
    lines = [line for line in done.err.splitlines() if "Local-only" in line]
    assert len(lines) == 1 and "Deployments: write" in lines[0]
    posts = team.requests("POST", "/deployments")
    reader.sync()
    reader.sync()
    assert team.requests("POST", "/deployments") == posts  # no retry loop across rounds either
    kept = reader.record(str(body["id"]))
    assert kept is not None and needs_sharing(kept)  # recorded here, honestly not shared


def test_github_down_during_a_rollback_queues_the_mirror_then_lands_it_once(team: Team) -> None:
    def down(github: GitHubSandbox) -> None:
        github.faults.server_errors(None, path="*/deployments*")

    team.github(down)
    a = team.kamal_a()  # Kamal over SSH: the rollback needs no GitHub
    done, body = rollback(a)
    assert done.code == 0, done.err
    assert body is not None
    deploy_id = str(body["id"])
    record = a.record(deploy_id)
    assert record is not None and needs_sharing(record)  # queued in the history
    team.github(lambda github: github.faults.clear())
    a.sync()
    record = a.record(deploy_id)
    assert record is not None and not needs_sharing(record)
    a.sync()  # a second round writes nothing more

    def deployments(world: World) -> list[int]:
        listed = world.deployments(REPO, environment=ENV)
        return [
            d.id for d in listed if isinstance(d.payload, dict) and d.payload.get(KEY) == deploy_id
        ]

    found = team.box.world(deployments)
    assert isinstance(found, list) and len(found) == 1
    theirs = next(r for r in team.b.sync() if r.id == deploy_id)
    assert theirs.status is Status.SUCCEEDED


def test_an_empty_history_on_a_third_machine_converges_after_one_round(team: Team) -> None:
    done, _ = rollback(team.a)
    assert done.code == 0, done.err
    mine = {r.id: r for r in team.a.sync()}
    third = team.machine("c", "carol")
    theirs = {r.id: r for r in third.sync()}
    assert theirs.keys() == mine.keys()  # the same deploys, by id
    assert {i: r.status for i, r in theirs.items()} == {i: r.status for i, r in mine.items()}
    # What GitHub alone says matches too; the sandbox's past rollback runs name their SHA
    # only in short in their title, so for those (recorded before sharing) the SHA may differ.
    shared = [i for i, r in mine.items() if r.deploy.triggered_by.value == "push" or is_mine(r)]
    assert shared
    for deploy_id in shared:
        a, c = mine[deploy_id].deploy, theirs[deploy_id].deploy
        assert (c.sha, c.actor, c.triggered_by, c.rollback_of) == (
            a.sha,
            a.actor,
            a.triggered_by,
            a.rollback_of,
        )


def is_mine(record: DeployRecord) -> bool:
    return mirrors(record) and record.deploy.actor == "alice"


def test_a_deployment_github_actions_made_is_noted_on_its_runs_record_not_doubled(
    team: Team,
) -> None:
    run = team.box.world(lambda world: world.push(REPO, ENV, "success"))
    assert isinstance(run, WorldRun)

    def noted() -> bool:
        mine = [r for r in team.b.sync() if r.run_id == run.id]
        return len(mine) == 1 and any("linked_deployment" in e.data for e in mine[0].events)

    until("the Actions deployment noted on the push's record", noted, timeout=180)
    records = [r for r in team.b.records() if r.run_id == run.id]
    assert len(records) == 1
    notes = [e for e in records[0].events if "linked_deployment" in e.data]
    assert len(notes) == 1 and "GitHub Actions recorded this run as deployment #" in notes[0].detail
    assert not needs_sharing(records[0])  # a push deploy: GitHub has it already


def test_a_teammates_run_seen_before_its_first_status_is_recorded_from_its_deployment(
    team: Team,
) -> None:
    """The race a round can lose: a teammate's deployment (no status yet) and its dispatched
    run are both there. The record must come from the deployment (same actor, rollback_of),
    without a PENDING status the teammate's own record never had."""
    records = team.b.sync()
    target = next(r for r in records if r.status is Status.SUCCEEDED)
    config = team.box.config
    deploy_id = "feedfacecafe"

    async def teammate() -> None:
        token = config.github.token
        assert token is not None
        async with GitHubClient(config.github.api_url, token) as github:
            await github.create_deployment(
                REPO,
                sha=target.deploy.sha,
                environment=ENV,
                task="deploy:rollback",
                payload={
                    KEY: deploy_id,
                    "actor": "erin",
                    "triggered_by": "mcp",
                    "rollback_of": target.id,
                    "action": "rollback",
                    "request_id": f"vmkit-{deploy_id}",
                },
                description="Roll back staging (mcp, erin)",
            )
            env = config.repo(REPO).environment(ENV)
            request_id = f"vmkit-{deploy_id}"
            inputs = {"sha": target.deploy.sha, "environment": ENV}
            await github.dispatch(REPO, env.workflow, env.branch, inputs, request_id)

    asyncio.run(teammate())
    mine = next(r for r in team.b.sync() if r.id == deploy_id)
    assert (mine.deploy.actor, mine.deploy.triggered_by.value) == ("erin", "mcp")
    assert mine.deploy.rollback_of == target.id
    assert Status.PENDING not in statuses(mine)
    assert mine.run_id is not None  # and the run is linked to it, not a record of its own
    assert len([r for r in team.b.records() if r.run_id == mine.run_id]) == 1
