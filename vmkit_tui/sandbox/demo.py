"""The embedded sandbox as one running thing: a world, its GitHub and its VMs, on 127.0.0.1.

`vmkit-tui demo` and `vmkit-tui sandbox` both start a `SandboxRuntime` in a thread of its own
(its own event loop), write a config that points vmkit-tui at it (the API URL, the token, each
VM's `user@127.0.0.1:port`, the known_hosts file and client key it generated), and keep a
trickle of new pushes going. vmkit-tui then talks to it exactly as to a real account: real
HTTP, real SSH, host keys checked. Nothing here imports Textual.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmkit_tui.config_table import toml_string
from vmkit_tui.domain.event_ids import run_deploy_id
from vmkit_tui.domain.models import Deploy, EventKind, NewEvent, Trigger
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.repo_files import repo_files
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ScaledClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.history import History
from vmkit_tui.store.history.durable import _write_durably

# What new pushes do while you watch: mostly succeed; each of the four failures the product
# must pinpoint shows up every so often.
TRAFFIC = (
    ("success", 10),
    ("health_timeout", 2),
    ("buildpack_no_procfile", 1),
    ("ghcr_push_denied", 1),
    ("ssh_unreachable", 1),
)


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    api_url: str
    token: str
    config_path: Path
    key_dir: Path


async def derive_config(
    world: World, api_url: str, vms: VmSandbox, token: str, data_dir: Path
) -> str:
    """The config `vmkit-tui init` derives from the sandbox's repos (their deploy workflows and
    Kamal configs, over its own GitHub API), with its own token, history and logs under
    `data_dir`, apart from any real history."""
    from vmkit_tui.domain.secret import Secret
    from vmkit_tui.onboard import plan_repos, render_config
    from vmkit_tui.sources.github import GitHubClient

    async with GitHubClient(api_url, Secret(token)) as client:
        # Named, so the dashboard lists them in the world's order (as the demo always has).
        plans = await plan_repos(
            client, [repo.full_name for repo in world.repos.values()], environ={}
        )
    return render_config(
        plans,
        known_hosts=vms.known_hosts_path,
        header=["Written by vmkit-tui for its sandbox: a simulated GitHub and VMs on 127.0.0.1."],
        preamble=[
            "[github]",
            f"api_url = {toml_string(api_url)}",
            f"token = {toml_string(token)}  # the sandbox's own token, not a real one",
            "",
            "[paths]",
            f"history = {toml_string(str(data_dir / 'history.json'))}",
            f"data_dir = {toml_string(str(data_dir))}",
        ],
        primary_runs_kamal=True,
    )


def record_past(world: World, history: History, html_url: str = "https://github.com") -> int:
    """Record the world's past runs as vmkit-tui would have, had it been watching all along.

    Only what the history alone can know: each deploy's identity (with the trigger: rollbacks
    were started from the TUI or by an assistant over MCP) and its creation. Statuses, logs,
    durations and diagnoses are then found by deploy tracking from the sandbox's GitHub and VMs,
    exactly as for a real account. Returns the number of deploys recorded."""
    creates: list[tuple[Deploy, list[NewEvent]]] = []
    latest: dict[tuple[str, str, str], str] = {}  # (repo, env, sha) → newest deploy id
    runs = sorted(world.runs(), key=lambda run: (run.created_at, run.id))
    for run in runs:
        repo, env = run.repo.full_name, run.environment
        deploy_id = run_deploy_id(repo, run.id)  # as tracking on any machine would name it
        trigger = Trigger.PUSH
        if run.event == "workflow_dispatch":
            trigger = Trigger.MCP if run.id % 3 == 0 else Trigger.MANUAL
        deploy = Deploy(
            id=deploy_id,
            repo=repo,
            environment=env,
            sha=run.sha,
            triggered_by=trigger,
            actor=run.actor,
            created_at=run.created_at,
            run_id=run.id,
            run_url=f"{html_url}/{repo}/actions/runs/{run.id}",
            rollback_of=latest.get((repo, env, run.sha)) if run.is_rollback else None,
        )
        data = {
            "title": run.display_title.splitlines()[0],
            "event": run.event,
            "branch": run.head_branch,
        }
        if run.request_id:
            data["request_id"] = run.request_id
        creates.append(
            (deploy, [NewEvent(deploy_id, EventKind.CREATED, run.created_at, data=data)])
        )
        latest[(repo, env, run.sha)] = deploy_id
    history.apply(creates)
    return len(creates)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (the config holds a token): 0600, in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_durably(path, text.encode("utf-8"))


class SandboxRuntime:
    """World + GitHub + VMs in a background thread with its own event loop."""

    def __init__(
        self, data_dir: Path, *, seed: int = 7, speed: float = 4.0, traffic_every: float = 90.0
    ) -> None:
        self.data_dir = data_dir
        self.seed = seed
        self.speed = speed
        self.traffic_every = traffic_every  # simulated seconds between new pushes (0: none)
        self.world: World | None = None
        self.info: SandboxInfo | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._github: GitHubSandbox | None = None
        self._vms: VmSandbox | None = None
        self._traffic: asyncio.Task[None] | None = None

    @property
    def web_url(self) -> str:
        """The base of the sandbox's web links (its runs' pages)."""
        assert self._github is not None
        return self._github.web_url

    @property
    def now(self) -> Callable[[], datetime]:
        """The simulated clock, for the app's relative times ("2m ago")."""
        assert self.world is not None
        return self.world.clock.now

    def on_github(self, action: Callable[[GitHubSandbox], object], timeout: float = 10.0) -> object:
        """Run `action(github_sandbox)` on the sandbox's loop: fault injection for tests."""
        assert self._loop is not None and self._github is not None
        github = self._github

        async def call() -> object:
            return action(github)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def ports(self) -> list[int]:
        """Every port the sandbox listens on (its GitHub API and each VM)."""
        assert self._github is not None and self._vms is not None and self.world is not None
        github_port = int(self._github.base_url.rsplit(":", 1)[1])
        return [github_port, *(self._vms.port_of(vm.name) for vm in self.world.vms())]

    def dispatch_requests(self) -> int:
        """How many workflow dispatches the sandbox GitHub received (for tests)."""
        assert self._github is not None
        return sum(
            1
            for r in self._github.requests
            if r.method == "POST" and r.path.endswith("/dispatches")
        )

    def vm_host_spec(self, vm_name: str) -> str:
        assert self._vms is not None
        return self._vms.host_spec(vm_name)

    def start(self, timeout: float = 30.0) -> SandboxInfo:
        ready: Future[SandboxInfo] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="vmkit-sandbox", daemon=True
        )
        self._thread.start()
        self.info = ready.result(timeout)
        return self.info

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def run_in_sandbox(self, action: Callable[[World], object], timeout: float = 10.0) -> object:
        """Run `action(world)` on the sandbox's loop (the world is not thread-safe); an
        awaitable it returns is awaited there."""
        assert self._loop is not None and self.world is not None
        world = self.world

        async def call() -> object:
            result = action(world)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def _run(self, ready: Future[SandboxInfo]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            ready.set_result(loop.run_until_complete(self._startup()))
        except BaseException as exc:  # report any start-up failure to the caller's thread
            ready.set_exception(exc)
            loop.close()
            return
        loop.run_forever()
        loop.close()

    async def _startup(self) -> SandboxInfo:
        clock = ScaledClock(datetime.now(UTC).replace(microsecond=0), speed=self.speed)
        world = self.world = World.seeded(self.seed, clock, profile="demo")
        key_dir = self.data_dir / "sandbox-keys"
        self._github = GitHubSandbox(world)
        api_url = await self._github.start("127.0.0.1", 0)
        self._github.html_url = self._github.web_url  # run links say they are the sandbox
        self._vms = VmSandbox(world, key_dir)
        await self._vms.start("127.0.0.1")
        vms = self._vms
        self._github.files = repo_files(
            world, lambda vm: f"127.0.0.1:{vms.port_of(vm)}", vms.user, vms.client_key_path
        )
        config_path = self.data_dir / "config.toml"
        text = await derive_config(world, api_url, self._vms, SANDBOX_TOKEN, self.data_dir)
        await asyncio.to_thread(write_private, config_path, text)
        if self.traffic_every > 0:
            self._traffic = asyncio.create_task(self._pushes(world))
        return SandboxInfo(
            api_url=api_url, token=SANDBOX_TOKEN, config_path=config_path, key_dir=key_dir
        )

    async def _pushes(self, world: World) -> None:
        """New push deploys every so often, on the simulated clock."""
        rng = random.Random(f"{self.seed}:traffic")
        scenarios = [name for name, weight in TRAFFIC for _ in range(weight)]
        environments = world.environments()
        while True:
            await world.clock.sleep(self.traffic_every * rng.uniform(0.6, 1.4))
            env = rng.choice(environments)
            world.push(env.repo, env.name, scenario=rng.choice(scenarios))

    async def _shutdown(self) -> None:
        if self._traffic is not None:
            self._traffic.cancel()
            await asyncio.gather(self._traffic, return_exceptions=True)
        if self._vms is not None:
            await self._vms.stop()
        if self._github is not None:
            await self._github.stop()
