"""CPU use of the vmkit-tui dashboard: idle, with a deploy's log streaming, and with help open.

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--profile OUT.txt]

Every program runs in a tmux session of its own at 120x40 (a real terminal). CPU is the
process's user+system time from psutil over `--seconds`, as % of one core; the sandbox
(`vmkit-tui sandbox --speed 1`) runs in a process of its own and is not counted.

- bare: a bare Textual app (Header + DataTable with 50 rows + Footer), for comparison;
- idle: the dashboard with 100 environments configured (on the sandbox's repos, on branches
  with no runs: nothing running), each with 50 finished deploys in its history;
- streaming: the dashboard on the sandbox's environments, the sandbox's running deploy selected
  (command palette, by SHA) and its log pane following. Its environment has one more host,
  bench/stream_host.py, whose kamal-proxy log grows 20 lines a second (the sandbox's own VMs
  print a few lines a minute at 1x); the line shows the rate the log really grew at. Like the
  idle state's, its history is caught up: before the dashboard starts, `vmkit-tui deploys`
  records each environment's past and every finished deploy's job logs are fetched through
  `DeployService.fetch_logs` (the dashboard's background fetch of the past would otherwise
  spend the whole window on its one-time work, a deploy every 2 s);
- help: the same on a fresh sandbox, with `?` open. Each of these two gets a fresh sandbox:
  its seeded deploy runs for about two more minutes at 1x, so keep `--seconds` <= 90.

`--profile OUT` also runs `py-spy record --format raw` for 20 s of the streaming window.
Prints a line per state, then `cpu_idle_pct=`, `cpu_streaming_pct=`, `cpu_help_pct=` and last
`cpu_bare_pct=` (targets: idle <= 1, streaming <= 5, help <= 5).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bare_app import bare_app
from tui_driver import (
    PYTHON,
    ROOT,
    VMKIT,
    Sandbox,
    StreamHost,
    Tmux,
    cpu_percent,
    settle,
    toml_text,
    write_private,
)

from vmkit_tui.config import load_config
from vmkit_tui.domain.event_ids import log_marker_id
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.tracking.job_logs import wants_job_logs

BARE = bare_app(first_frame_only=False)
DIAGNOSIS = {"cause": "health check timed out", "fix": "bind 0.0.0.0:$PORT", "source": "kamal",
             "line": "target failed to become healthy within 30s", "line_number": 212}  # fmt: skip
LINES = re.compile(r"Log · .*? · ([\d,]+) lines")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def job_log_note(at: datetime, rng: random.Random) -> tuple:
    """The NOTE a tracker records when it has spooled a job's log: with it, the dashboard's
    background fetch of the past's job logs finds nothing to do, as after a real first start
    has caught up (without it, each invented run would be asked about once, a 404)."""
    job_id, lines = 20_000_000_000 + rng.randrange(10**9), rng.randrange(200, 2000)
    detail = f"log fetched: job {job_id} (deploy, {lines} lines)"
    return at, "note", None, detail, {"job_id": job_id, "job": "deploy", "lines": lines}


def idle_world(folder: Path, sandbox: Sandbox, share: bool = False) -> Path:
    """100 environments on the sandbox's repos, on branches with no runs, each with 50
    finished deploys whose job logs were fetched (the history file written as vmkit-tui writes
    it); the config's path."""
    rng, start = random.Random(2026), datetime.now(UTC) - timedelta(days=200)
    repos = {r["name"]: {**r, "environments": {}} for r in copy.deepcopy(sandbox.config["repos"])}
    deploys: dict[str, dict] = {}
    events: dict[str, dict] = {}
    for index in range(100):
        repo = list(repos)[index % len(repos)]
        env = f"bench-{index:02d}"
        repos[repo]["environments"][env] = {"branch": env}
        for n in range(50):
            at, run_id = start + timedelta(hours=n), 9_000_000_000 + rng.randrange(10**9)
            deploy_id = uuid.uuid4().hex[:12]
            deploys[str(len(deploys) + 1)] = {
                "id": deploy_id, "repo": repo, "environment": env,
                "sha": f"{rng.getrandbits(160):040x}", "triggered_by": "push",
                "actor": rng.choice(["octocat", "hubot", "mona"]), "run_id": run_id,
                "run_url": f"https://github.com/{repo}/actions/runs/{run_id}",
                "rollback_of": None, "created_at": iso(at),
            }  # fmt: skip
            failed = rng.random() < 0.15
            title = f"Merge pull request #{rng.randrange(9999)} from acme/feature-{n}"
            steps = [
                (at, "created", None, "run seen", {"title": title}),
                (at + timedelta(seconds=4), "status", "running", "", {}),
                (at + timedelta(seconds=rng.randrange(30, 90)), "first_healthy", None, "", {})
                if not failed
                else (at, "diagnosis", None, "health check timed out", DIAGNOSIS),
                (at + timedelta(seconds=100), "status", "failed" if failed else "succeeded",
                 "run completed", {}),
            ]  # fmt: skip
            # its job's log fetched, as a tracker records it: a real past has its logs (the
            # runs are invented, so GitHub would have none to give; see job_log_note)
            steps.append(job_log_note(at + timedelta(seconds=100), rng))
            for moment, kind, status, detail, data in steps:
                seq = len(events) + 1
                event_id = log_marker_id(deploy_id, data["job_id"]) if "job_id" in data else None
                events[str(seq)] = {
                    "event_id": event_id or uuid.uuid4().hex, "deploy_id": deploy_id, "seq": seq,
                    "at": iso(moment), "kind": kind, "status": status, "detail": detail,
                    "data": data,
                }  # fmt: skip
    meta = {"1": {"format": "vmkit-tui-history", "version": 1}}
    history = {"deploys": deploys, "events": events, "meta": meta}
    write_private(folder / "history.json", json.dumps(history))
    config = {
        "github": {**sandbox.config["github"], **({"share": True} if share else {})},
        "paths": {"history": str(folder / "history.json"), "data_dir": str(folder)},
        "repos": list(repos.values()),
    }
    return write_private(folder / "config.toml", toml_text(config))


def catch_up(config: Path, repos: list[dict]) -> int:
    """Record the past of every environment (`vmkit-tui deploys`, one sync round each, all at
    once), then fetch every finished deploy's job logs through the service, four at a time:
    what a first start's background fetch does a deploy every 2 s over its first minutes. How
    many deploys' logs were fetched."""
    syncs = [
        subprocess.Popen(
            [VMKIT, "--config", str(config), "deploys", repo["name"], env],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for repo in repos
        for env in repo["environments"]
    ]
    for sync in syncs:
        sync.wait(120)
    return asyncio.run(_fetch_past(config))


async def _fetch_past(path: Path) -> int:
    config = load_config(path)
    assert config.history_path is not None and config.data_dir is not None
    history = AsyncHistory(History(config.history_path))
    service = DeployService(config, history, config.data_dir, record_calls=False)
    try:
        todo = [record.id for record in await history.records() if wants_job_logs(record)]
        gate = asyncio.Semaphore(4)

        async def fetch(deploy_id: str) -> None:
            async with gate:
                await service.fetch_logs(deploy_id)

        await asyncio.gather(*map(fetch, todo))
        return len(todo)
    finally:
        await service.stop()


def measure_idle(tmux: Tmux, command: list[str], ready: str, seconds: float) -> float:
    process = tmux.start("idle", command)
    try:
        tmux.wait_for("idle", lambda screen: ready in screen, f"{ready!r} on screen", 60)
        settle(process)
        return cpu_percent(process, seconds)
    finally:
        tmux.kill("idle", process)


def log_lines(screen: str) -> int:
    match = LINES.search(screen)
    return int(match[1].replace(",", "")) if match else -1


def measure_streaming(
    tmux: Tmux, folder: Path, seconds: float, help_open: bool, profile: str | None
) -> tuple[float, str]:
    name = "help" if help_open else "streaming"
    (folder := folder / name).mkdir()
    sandbox, host, process = Sandbox(folder / "sandbox", speed=1), StreamHost(20), None
    try:
        repo, env, run = sandbox.running_push()
        sha, known_hosts = run["head_sha"], folder / "known_hosts"
        known_hosts.write_text(Path(env["known_hosts"]).read_text() + host.known_hosts)
        env.update(hosts=[*env["hosts"], host.host], known_hosts=str(known_hosts))
        paths = {"history": str(folder / "history.json"), "data_dir": str(folder)}
        config = write_private(
            folder / "config.toml", toml_text({**sandbox.config, "paths": paths})
        )
        took = time.monotonic()
        caught_up = catch_up(config, sandbox.config["repos"])
        took = time.monotonic() - took
        process = tmux.start(name, [VMKIT, "--config", str(config)])
        tmux.wait_for(name, lambda s: "●" in s, "a running deploy in the repos pane", 60)
        tmux.keys(name, "C-p")
        tmux.wait_for(name, lambda s: "Search for commands" in s, "the palette")
        tmux.keys(name, sha[:12], literal=True)
        tmux.wait_for(name, lambda s: f"deploy {sha[:12]}" in s, "the deploy in the palette")
        tmux.keys(name, "Enter")
        tmux.wait_for(name, lambda s: f"SHA {sha}" in s, "the deploy selected")
        tmux.keys(name, "l")
        before = log_lines(tmux.wait_for(name, lambda s: "· following" in s, "log following"))
        tmux.wait_for(name, lambda s: log_lines(s) > before + 20, "the log growing", 20)
        history, deadline = folder / "history.json", time.monotonic() + 30
        while time.time() - history.stat().st_mtime < 3 and time.monotonic() < deadline:
            time.sleep(0.5)  # the first tracking round writes the history: let it finish
        start, first = time.monotonic(), log_lines(tmux.screen(name))
        if help_open:
            tmux.keys(name, "?")
            tmux.wait_for(name, lambda s: "Keys (greyed" in s, "the help screen")
        spy = None
        if profile and not help_open:
            spy = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(process.pid),
                 "-d", f"{min(20, int(seconds))}", "--nonblocking", "--format", "raw",
                 "-o", profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu = cpu_percent(process, seconds)
        if help_open:
            tmux.keys(name, "Escape")
        # the log pane does not repaint under help: it catches up once help is closed
        grew = (
            log_lines(tmux.wait_for(name, lambda s: log_lines(s) > first, "the log grown")) - first
        )
        if spy is not None:
            spy.wait(60)
        status = sandbox.get(f"/repos/{repo}/actions/runs/{run['id']}")["status"]
        return cpu, (
            f"{name}: vmkit-tui on the sandbox, {repo} {run['head_branch']} deploy {sha[:7]} "
            f"selected, log pane following{', help open' if help_open else ''}; history caught "
            f"up first ({caught_up} past deploys' job logs fetched in {took:.0f} s); the log grew "
            f"{grew / (time.monotonic() - start):.1f} lines/s; the run was {status} at the end: "
            f"{cpu:.2f}% of a core"
        )
    finally:
        if process is not None:
            tmux.kill(name, process)
        host.stop()
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="window per state")
    parser.add_argument("--profile", help="py-spy raw profile of the streaming state, to here")
    parser.add_argument("--share", action="store_true", help="idle with the team history on")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmkit-idle-cpu-bench-"))
    tmux = Tmux(120, 40)
    try:
        cpu_streaming, streaming = measure_streaming(
            tmux, folder, args.seconds, False, args.profile
        )
        print(streaming, flush=True)
        cpu_help, helped = measure_streaming(tmux, folder, args.seconds, True, None)
        print(helped, flush=True)
        (folder / "idle").mkdir()
        sandbox = Sandbox(folder / "idle" / "sandbox", speed=1)
        try:
            config = idle_world(folder / "idle", sandbox, args.share)
            cpu_idle = measure_idle(
                tmux, [VMKIT, "--config", str(config)], "Deploys · bench-00", args.seconds
            )
        finally:
            sandbox.stop()
        print(
            f"idle: vmkit-tui, 100 environments x 50 finished deploys, nothing running"
            f"{', team history on' if args.share else ''}: "
            f"{cpu_idle:.2f}% of a core",
            flush=True,
        )
        (folder / "bare.py").write_text(BARE)
        cpu_bare = measure_idle(
            tmux, [PYTHON, str(folder / "bare.py")], "Merge pull request #0", args.seconds
        )
        print(
            f"bare: Textual app, Header + DataTable (50 rows) + Footer: {cpu_bare:.2f}% of a core"
        )
        print(f"({args.seconds:g} s per state, tmux 120x40, sandbox at 1x)")
        print(f"cpu_idle_pct={cpu_idle:.2f}")
        print(f"cpu_streaming_pct={cpu_streaming:.2f}")
        print(f"cpu_help_pct={cpu_help:.2f}")
        print(f"cpu_bare_pct={cpu_bare:.2f}")
    finally:
        tmux.kill_server()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
