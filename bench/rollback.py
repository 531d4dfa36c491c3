"""Rollback latency at the service level, one run: how soon after confirming is the new deploy
Running, and how long until the rolled-back version is live?

    .venv/bin/python bench/rollback.py [--rollbacks 12] [--speed 1]

A demo sandbox world (3 repos, 7 environments with weeks of runs) is served over real HTTP and
real SSH on 127.0.0.1, on a clock running at `--speed` × real time (1: real speed); a
`DeployService` tracks every environment (VM streams included), as the TUI's does, and a
`DeployActions` shares its history and updates. Then:

1. `--rollbacks` rollbacks with the `github` strategy, one environment after another (each
   alternating between two eligible targets, found by preflight). For each, the preflight is
   made first (the TUI shows it in the confirm dialog); the time measured runs from calling
   `rollback()` to the new record being both in the history and published (`DeployChanged`),
   which is the floor of the TUI's "key `r` confirmed → row Running". Each rollback is then
   cancelled (its environment is reused only once that run has stopped).
2. One rollback followed to its end by tracking: simulated seconds from the confirm to the run
   completing successfully (VMKit promises usually under 60 s), and to the first healthy
   response.

3. The same from the keyboard, in a running app on the threaded sandbox that `vmkit-tui demo`
   uses: select a deploy, `r`, wait for the preflight in the dialog, then time `y` → the new row
   shown Running at the top of the deploys table (then cancel it through the service).

Last line: `rollback_to_running_ms=<median of 3>` (target ≤ 500); the service-level floor of 1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.actions.base import ActionTiming
from vmkit_tui.actions.deploy_actions import DeployActions
from vmkit_tui.config import Config, EnvironmentConfig, GitHubConfig, HostSpec, RepoConfig
from vmkit_tui.domain.models import DeployRecord, Status, Trigger
from vmkit_tui.domain.secret import Secret
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth, Update
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.servers.vm_server import VmSandbox
from vmkit_tui.sandbox.world.clock import ScaledClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.sources.github import GitHubClient
from vmkit_tui.sources.ssh import SshOptions
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.polling import TrackingTiming

EnvKey = tuple[str, str]
HERMETIC = SshOptions(ssh_config=None, use_agent=False)


def build_config(world: World, api_url: str, vms: VmSandbox) -> Config:
    """Every environment of the world, with its VMs (as `vmkit-tui demo` writes it)."""
    repos = []
    for repo in world.repos.values():
        envs = tuple(
            EnvironmentConfig(
                env.name,
                workflow=env.workflow.file_name,
                branch=env.branch,
                hosts=tuple(HostSpec.parse(vms.host_spec(vm)) for vm in env.vm_names),
                deploy_host=HostSpec.parse(vms.host_spec(env.deploy_host)),
                identity_file=vms.client_key_path,
                known_hosts=vms.known_hosts_path,
                service=env.service,
            )
            for env in world.environments(repo)
        )
        repos.append(RepoConfig(repo.full_name, repo.image, envs))
    return Config(
        source=None,
        github=GitHubConfig(api_url=api_url, token=Secret(SANDBOX_TOKEN)),
        repos=tuple(repos),
    )


async def eligible_targets(
    actions: DeployActions, history: History, key: EnvKey, wanted: int = 2
) -> list[DeployRecord]:
    """Succeeded deploys other than the live version that preflight lets us roll back to."""
    found: list[DeployRecord] = []
    for record in history.records(*key):
        if record.status is not Status.SUCCEEDED:
            continue
        check = await actions.preflight(*key, record.id)
        fresh = all(r.deploy.sha != record.deploy.sha for r in found)
        if check.refusal() is None and check.target.deploy is not None and fresh:
            found.append(record)
        if len(found) == wanted:
            break
    return found


async def next_new_record(
    queue: asyncio.Queue[Update], known: set[str], key: EnvKey
) -> DeployRecord:
    while True:
        update = await queue.get()
        if (
            isinstance(update, DeployChanged)
            and update.record.id not in known
            and (update.record.deploy.repo, update.record.deploy.environment) == key
        ):
            return update.record


async def run_stopped(world: World, run_id: int | None) -> None:
    run = world.run(run_id) if run_id is not None else None
    while run is not None and world.run_status(run).status != "completed":
        await asyncio.sleep(0.1)


async def measure(args: argparse.Namespace) -> int:
    clock = ScaledClock(datetime.now(UTC).replace(microsecond=0), speed=args.speed)
    world = World.seeded(7, clock, profile="demo")
    data_dir = Path(tempfile.mkdtemp(prefix="vmkit-rollback-bench-"))
    sandbox = GitHubSandbox(world)
    await sandbox.start()
    vms = VmSandbox(world, data_dir / "vm-keys")
    await vms.start()
    config = build_config(world, sandbox.base_url, vms)
    history = History(data_dir / "history.json")
    service = DeployService(
        config,
        AsyncHistory(history),
        data_dir,
        now=clock.now,
        tracking_timing=TrackingTiming(sleep=clock.sleep),
        ssh_options=HERMETIC,
    )
    client = GitHubClient(
        sandbox.base_url,
        Secret(SANDBOX_TOKEN),
        clock=lambda: clock.now().timestamp(),
        sleep=clock.sleep,
    )
    actions = DeployActions(
        config,
        service.history,
        client,
        data_dir,
        service.updates,
        now=clock.now,
        ssh_options=HERMETIC,
        timing=ActionTiming(sleep=clock.sleep),
        after_dispatch=service.track_now,
    )
    keys = [(repo.name, env.name) for repo in config.repos for env in repo.environments]
    samples: list[float] = []
    try:
        async with service.updates.subscription() as queue, service:
            ok: set[EnvKey] = set()
            while len(ok) < len(keys):
                update = await queue.get()
                if isinstance(update, SourceHealth) and update.health is Health.OK:
                    ok.add((update.repo, update.environment))
            targets = {key: await eligible_targets(actions, history, key) for key in keys}
            keys = [key for key in keys if targets[key]]
            last_run: dict[EnvKey, int | None] = {}
            for index in range(args.rollbacks):
                key = keys[index % len(keys)]
                choices = targets[key]
                target = choices[(index // len(keys)) % len(choices)]
                await run_stopped(world, last_run.get(key))
                check = await actions.preflight(*key, target.id)
                known = {record.id for record in history.records(*key)}
                while not queue.empty():
                    queue.get_nowait()
                started = time.perf_counter()
                task = asyncio.create_task(
                    actions.rollback(
                        *key, target.id, trigger=Trigger.MANUAL, actor="bench", preflight=check
                    )
                )
                shown = await next_new_record(queue, known, key)
                samples.append((time.perf_counter() - started) * 1000)
                record = await task
                assert record.id == shown.id and history.record(record.id).status.is_active
                last_run[key] = record.run_id
                await actions.cancel(record.id, trigger=Trigger.MANUAL, actor="bench")

            key = next((k for k in keys if world.environment(*k).lock is None), keys[0])
            for run in world.runs(key[0], include_future=True):  # none ahead in its group
                if run.environment == key[1]:
                    await run_stopped(world, run.id)
            confirmed = clock.now()
            record = await actions.rollback(
                *key, targets[key][0].id, trigger=Trigger.MANUAL, actor="bench"
            )
            while True:
                update = await queue.get()
                if (
                    isinstance(update, DeployChanged)
                    and update.record.id == record.id
                    and update.record.status.is_final
                ):
                    done = update.record
                    break
    finally:
        await actions.aclose()
        await client.aclose()
        await vms.stop()
        await sandbox.stop()

    median = statistics.median(samples)
    print(f"world: demo ({len(keys)} environments), clock at {args.speed:g}x real time")
    print(
        f"rollback() → record in history and published, over {len(samples)} rollbacks: "
        f"median {median:.1f} ms, p90 {statistics.quantiles(samples, n=10)[-1]:.1f} ms, "
        f"max {max(samples):.1f} ms (target ≤ 500 ms)"
    )
    finished = done.finished_at
    duration = done.duration
    completed = (finished - confirmed).total_seconds() if finished else float("nan")
    print(
        f"confirm → run completed ({done.status.value}) on {key[0]} {key[1]}: "
        f"{completed:.1f} simulated s (VMKit promises usually < 60 s)"
    )
    if duration is not None:
        print(
            f"deploy duration (start → {duration[1].value.replace('_', ' ')}): "
            f"{duration[0].total_seconds():.1f} simulated s"
        )
    print(f"service_rollback_to_running_ms={median:.1f}")
    return 0 if done.status is Status.SUCCEEDED else 1


async def measure_tui(rollbacks: int, speed: float) -> list[float]:
    """Key `y` in the confirm dialog → the new row Running on screen, in a running app."""
    from textual.widgets import DataTable

    from vmkit_tui.actions.preflight import default_rollback_target
    from vmkit_tui.config import load_config
    from vmkit_tui.frontends.tui.app import VmkitApp
    from vmkit_tui.frontends.tui.confirm import RollbackScreen
    from vmkit_tui.sandbox.commands import sandbox_service
    from vmkit_tui.sandbox.demo import SandboxRuntime, record_past

    runtime = SandboxRuntime(
        Path(tempfile.mkdtemp(prefix="vmkit-rollback-tui-")), speed=10.0, traffic_every=0
    )
    info = runtime.start()
    samples: list[float] = []
    try:
        config = load_config(info.config_path)
        assert config.history_path is not None
        runtime.run_in_sandbox(lambda world: record_past(world, History(config.history_path)))
        service = sandbox_service(config, runtime)
        app = VmkitApp(service, now=runtime.now, spinners=False)

        async def until(predicate, timeout: float = 60.0) -> None:
            deadline = time.perf_counter() + timeout
            while not predicate():
                if time.perf_counter() > deadline:
                    raise TimeoutError("the app did not get there in time")
                await pilot.pause(0.005)

        async with app.run_test(size=(150, 45)) as pilot:
            keys = [(repo.name, env.name) for repo in config.repos for env in repo.environments]
            await until(
                lambda: all(
                    default_rollback_target(app.overview.deploys.get(k, [])) for k in keys[:3]
                )
            )

            async def one_rollback(key: EnvKey) -> None:
                await until(
                    lambda: not any(r.status.is_active for r in app.overview.deploys[key]), 120
                )
                target = default_rollback_target(app.overview.deploys[key])
                assert target is not None
                app.select(*key, target.id)
                await pilot.press("r")
                screen = app.screen
                assert isinstance(screen, RollbackScreen)
                await until(lambda: screen.checked is not None)
                if screen.refusal:
                    await pilot.press("n")
                    return
                table = app.main.query_one("#deploys", DataTable)
                before = {row.key.value for row in table.ordered_rows}
                started = time.perf_counter()
                press = asyncio.create_task(pilot.press("y"))  # the key, without waiting for idle
                await until(
                    lambda: (
                        table.row_count > 0
                        and table.ordered_rows[0].key.value not in before
                        and "running" in table.get_row_at(0)[0].plain
                    )
                )
                samples.append((time.perf_counter() - started) * 1000)
                await press
                new_id = table.ordered_rows[0].key.value
                await until(
                    lambda: (r := app.overview.find(new_id)) is not None and r.run_id is not None
                )
                await (await service.actions()).cancel(
                    new_id, trigger=Trigger.MANUAL, actor="bench"
                )

            async def settled(quiet: float = 2.0) -> None:
                """Tracking first catches up on the recorded past (logs, diagnoses): measure once
                it is quiet, as a user's app is after its first minute."""
                async with service.updates.subscription() as queue:
                    while True:
                        try:
                            await asyncio.wait_for(queue.get(), quiet)
                        except TimeoutError:
                            return

            await settled()
            for index in range(rollbacks):
                await one_rollback(keys[index % 3])
        await service.stop()
    finally:
        runtime.stop()
    return samples


async def measure_all(args: argparse.Namespace) -> int:
    status = await measure(args)
    samples = await measure_tui(args.rollbacks, args.speed)
    median = statistics.median(samples)
    print(
        f"TUI: key y in the confirm dialog → new row Running on screen, over {len(samples)} rollbacks: "
        f"median {median:.0f} ms, max {max(samples):.0f} ms (target ≤ 500 ms)"
    )
    print(f"rollback_to_running_ms={median:.1f}")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollbacks", type=int, default=12)
    parser.add_argument("--speed", type=float, default=1.0)
    return asyncio.run(measure_all(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
