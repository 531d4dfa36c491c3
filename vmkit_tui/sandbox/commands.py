"""`vmkit-tui demo` and `vmkit-tui sandbox`: the embedded sandbox, for trying and scripting.

Both start the simulated GitHub and VMs on free 127.0.0.1 ports and write a config for them
into a folder of their own (never the user's real config or history). `demo` then opens the
dashboard on it; `sandbox` prints how to point vmkit-tui (or a script) at it and waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vmkit_tui.config import Config, default_data_dir, load_config

if TYPE_CHECKING:
    from vmkit_tui.sandbox.demo import SandboxInfo, SandboxRuntime
    from vmkit_tui.service import DeployService

MARKER = ".vmkit-sandbox"  # says a folder is ours to reset
SETTLE_TIMEOUT = 20.0  # real seconds the demo waits for the past's statuses before opening


def prepare_data_dir(path: Path) -> None:
    """Start each run from a fresh sandbox world, keeping nothing of the last one but the keys.

    Refuses a non-empty folder that vmkit-tui did not create, so `--data-dir` can never wipe
    anything else."""
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        raise SystemExit(
            f"vmkit-tui: {path} is not empty and was not made by vmkit-tui; choose another --data-dir"
        )
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    (path / MARKER).write_text("vmkit-tui sandbox data: reset at every start\n")
    for name in ("history.json", "history.json.lock", "config.toml"):
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / "logs", ignore_errors=True)


def run_sandbox_command(args: argparse.Namespace) -> int:
    from vmkit_tui.sandbox.demo import SandboxRuntime, record_past
    from vmkit_tui.store.history import History

    if args.speed <= 0:
        print("vmkit-tui: --speed must be positive", file=sys.stderr)
        return 2
    data_dir = (
        Path(args.data_dir).expanduser() if args.data_dir else default_data_dir() / args.command
    )
    prepare_data_dir(data_dir)
    runtime = SandboxRuntime(data_dir, seed=args.seed, speed=args.speed)
    info = runtime.start()
    try:
        config = load_config(info.config_path)
        assert config.history_path is not None
        history = History(config.history_path)
        runtime.run_in_sandbox(lambda world: record_past(world, history, runtime.web_url))
        if args.command == "demo":
            print("vmkit-tui demo: catching up with the sandbox's past…", file=sys.stderr)
            asyncio.run(settle_past(sandbox_service(config, runtime)))
            code = _demo(args, config, runtime)
            print(
                f"vmkit-tui demo: its history is {config.history_path} and its logs are in "
                f"{data_dir / 'logs'} (reset at the next demo; --data-dir DIR keeps another)"
            )
            return code
        return _serve(info, runtime)
    finally:
        runtime.stop()


async def settle_past(service: DeployService) -> None:
    """One tracking round for every environment before the dashboard opens, so its first frame
    shows the recorded past complete (statuses found), not a screen of pending rows. Gives up
    quietly after SETTLE_TIMEOUT real seconds: the dashboard then catches up as usual."""
    from vmkit_tui.domain.updates import SourceHealth

    config = service.config
    waiting = {(repo.name, env.name) for repo in config.repos for env in repo.environments}
    async with service.updates.subscription() as queue, service:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while waiting:
                    update = await queue.get()
                    if isinstance(update, SourceHealth) and update.key == "github":
                        waiting.discard((update.repo, update.environment))


def sandbox_service(config: Config, runtime: SandboxRuntime) -> DeployService:
    """The deploy service for a sandbox config: tracking sleeps in simulated seconds, and SSH
    leaves the user's ~/.ssh config and agent alone (the sandbox wrote its own key)."""
    from vmkit_tui.service import DeployService
    from vmkit_tui.sources.ssh import SshOptions
    from vmkit_tui.store.history import AsyncHistory, History
    from vmkit_tui.tracking.polling import TrackingTiming

    assert config.history_path is not None and config.data_dir is not None
    speed = runtime.speed

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / speed)

    return DeployService(
        config,
        AsyncHistory(History(config.history_path)),
        config.data_dir,
        now=runtime.now,
        tracking_timing=TrackingTiming(sleep=sleep),
        ssh_options=SshOptions(ssh_config=None, use_agent=False),
    )


def _demo(args: argparse.Namespace, config: Config, runtime: SandboxRuntime) -> int:
    from vmkit_tui.frontends.tui.app import VmkitApp, run_app

    app = VmkitApp(sandbox_service(config, runtime), readonly=args.readonly, now=runtime.now)
    app.sub_title = f"demo · sandbox at {runtime.speed:g}x speed"
    return run_app(app)


def _serve(info: SandboxInfo, runtime: SandboxRuntime) -> int:
    world = runtime.world
    assert world is not None
    print("vmkit-tui sandbox is running on 127.0.0.1 (Ctrl-C to stop)")
    print(f"  GitHub API   {info.api_url}")
    print(f"  token        {info.token}   (the sandbox's own; not a real token)")
    for vm in world.vms():
        print(f"  VM {vm.name:<28} {runtime.vm_host_spec(vm.name)}")
    print(f"  known_hosts  {info.key_dir / 'known_hosts'}")
    print(f"  client key   {info.key_dir / 'id_ed25519'}")
    print(f"  config       {info.config_path}")
    print()
    print("Try it:")
    print(f"  vmkit-tui --config {info.config_path}")
    print(f"  export VMKIT_CONFIG={info.config_path} GH_TOKEN={info.token}")
    print("Or set up as a new user would, from the repos' Kamal configs:")
    print(
        f"  GH_ENTERPRISE_TOKEN={info.token} vmkit-tui --config ~/sandbox.toml init "
        f"--api-url {info.api_url} --known-hosts {info.key_dir / 'known_hosts'}"
    )
    sys.stdout.flush()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    print("stopping the sandbox")
    return 0
