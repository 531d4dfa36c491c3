"""Helpers for the benchmarks that drive vmkit-tui from outside, through its command line only.

Used by bench/idle_cpu.py and bench/soak.py: a tmux session of a fixed size per program (a real
terminal), key presses and screen polls; the sandbox (`vmkit-tui sandbox`) as a child process;
CPU use of one process; a minimal TOML writer for the configs the benchmarks write. Nothing
here imports vmkit_tui (its modules move; the command line stays).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
VMKIT = str(ROOT / ".venv" / "bin" / "vmkit-tui")
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


class Tmux:
    """tmux sessions on a private server (its own socket), killed as a whole at the end."""

    def __init__(self, cols: int = 120, rows: int = 40) -> None:
        self.socket = f"vmkit-bench-{os.getpid()}"
        self.cols, self.rows = cols, rows

    def _tmux(self, *args: str) -> str:
        command = ["tmux", "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def start(self, name: str, command: list[str]) -> psutil.Process:
        """Run `command` in a new detached session; its process (the pane's own, via exec)."""
        line = "exec " + " ".join(_quote(word) for word in command)
        self._tmux(
            "new-session", "-d", "-s", name, "-x", str(self.cols), "-y", str(self.rows), "-c",
            str(ROOT), line, ";", "set-option", "-t", name, "remain-on-exit", "on",
        )  # fmt: skip
        pid = int(self._tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip())
        return psutil.Process(pid)

    def screen(self, name: str) -> str:
        return self._tmux("capture-pane", "-p", "-t", name)

    def keys(self, name: str, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", name, *(["-l"] if literal else []), *keys)

    def wait_for(
        self, name: str, predicate: Callable[[str], object], what: str, timeout: float = 30.0
    ) -> str:
        """Poll the screen until `predicate(screen)` holds; the screen, or an error showing it."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(name)
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; screen:\n{screen}")
            time.sleep(0.2)

    def kill(self, name: str, process: psutil.Process | None = None) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-session", "-t", name], capture_output=True)
        if process is not None:
            stop_process(process)

    def kill_server(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _quote(word: str) -> str:
    return word if re.fullmatch(r"[\w@%+=:,./-]+", word) else "'" + word.replace("'", "'\\''") + "'"


def stop_process(process: psutil.Process | subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` (this one process only)."""
    proc = psutil.Process(process.pid) if isinstance(process, subprocess.Popen) else process
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    except psutil.NoSuchProcess:
        pass
    if isinstance(process, subprocess.Popen):
        process.wait(5)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def cpu_percent(process: psutil.Process, seconds: float) -> float:
    """% of one core used by `process` over the next `seconds` (wall clock)."""
    start, cpu0 = time.monotonic(), cpu_seconds(process)
    time.sleep(seconds)
    return 100 * (cpu_seconds(process) - cpu0) / (time.monotonic() - start)


def settle(process: psutil.Process, below: float = 20.0, timeout: float = 20.0) -> None:
    """Let start-up work finish: wait for a one-second window under `below` % (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while cpu_percent(process, 1.0) >= below and time.monotonic() < deadline:
        pass


class Sandbox:
    """`vmkit-tui sandbox` in a child process: the API URL, the token and its config."""

    def __init__(self, data_dir: Path, speed: float = 1.0, seed: int | None = None) -> None:
        self.out_path = data_dir.parent / f"{data_dir.name}.out"
        command = [VMKIT, "sandbox", "--data-dir", str(data_dir), "--speed", f"{speed:g}"]
        command += ["--seed", str(seed)] if seed is not None else []
        with self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 60
        while not re.search(r"^\s+config\s+(\S+)$", text := self.out_path.read_text(), re.M):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox did not start:\n{text}")
            time.sleep(0.2)
        self.api_url = re.search(r"GitHub API\s+(\S+)", text)[1]  # type: ignore[index]
        self.token = re.search(r"token\s+(\S+)", text)[1]  # type: ignore[index]
        self.config_path = Path(re.search(r"^\s+config\s+(\S+)$", text, re.M)[1])  # type: ignore[index]
        self.config = tomllib.loads(self.config_path.read_text())

    def get(self, path: str) -> dict:
        request = urllib.request.Request(
            self.api_url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def running_push(self, timeout: float = 120.0) -> tuple[str, dict, dict]:
        """(repo, its environment's config table, the run) of a push deploy running now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for repo in self.config["repos"]:
                found = self.get(f"/repos/{repo['name']}/actions/runs?status=in_progress")
                for run in found["workflow_runs"]:
                    for env in repo["environments"].values():
                        if run["event"] == "push" and env["branch"] == run["head_branch"]:
                            return repo["name"], env, run
            time.sleep(1)
        raise RuntimeError("no deploy running on the sandbox")

    def stop(self) -> None:
        stop_process(self.process)


class StreamHost:
    """bench/stream_host.py in a child process: an SSH host whose kamal-proxy log grows at
    `rate` lines a second; `host` for a config, `known_hosts` its line for a known_hosts file."""

    def __init__(self, rate: float = 20.0) -> None:
        script = str(ROOT / "bench" / "stream_host.py")
        self.process = subprocess.Popen(
            [PYTHON, script, "--rate", f"{rate:g}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        out = self.process.stdout
        assert out is not None
        self.host = f"deploy@127.0.0.1:{out.readline().strip().removeprefix('port=')}"
        self.known_hosts = out.readline().removeprefix("known_hosts=")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        stop_process(self.process)


def toml_text(doc: dict, prefix: str = "") -> str:
    """A TOML document for `doc` (strings, numbers, lists of strings, tables, arrays of
    tables): enough for a vmkit-tui config."""
    scalars, tables = [], []
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            body = toml_text(value, name)
            tables.append(body if body.startswith("[") else f"[{name}]\n{body}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            tables += [f"[[{name}]]\n" + toml_text(item, name) for item in value]
        else:
            scalars.append(f"{key} = {json.dumps(value)}\n")
    return "".join(scalars) + ("\n" if scalars and tables else "") + "\n".join(tables)


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path
