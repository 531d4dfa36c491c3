"""Memory of vmkit-tui against a hostile GitHub API that never stops answering, one run per mode.

    .venv/bin/python bench/hostile_server.py [--seconds 60] [--cap-mib 1500] [--show-screen]

A tiny HTTP server on a free 127.0.0.1 port answers every request with 200,
`Content-Type: application/json` and either an endless chunked body (`[` then `{"a":1},` as fast
as it can: "endless") or a 100 MiB valid JSON array of `{"a":1}` ("big"). A config points
`[github] api_url` at it (one repo, one environment, no hosts; history and data in a temporary
folder); `GH_TOKEN` and `GH_ENTERPRISE_TOKEN` (what a non-github.com URL reads) are dummies. The
program is driven only through its command line, for up to `--seconds` each: the CLI
(`vmkit-tui --config CFG deploys bench/hostile production`) and the dashboard
(`vmkit-tui --config CFG` in a private tmux server at 120×40). The RSS of the process and its
children is sampled every 0.2 s; past `--cap-mib` it is killed at once (peak printed as
"≥1500 (killed)"). Everything started is killed at the end.

Prints one line per run: program, body, seconds run, exit status (or "killed" / "timeout"),
peak RSS, what the server sent, and the first line of stderr (CLI) or the first line on screen
outside the header and the panes, where messages show (TUI; `--show-screen`: the whole screen).
Last line: `endless_body_peak_rss_mib=<max over the CLI and TUI endless runs>` (target ≤ 150).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
VMKIT = ROOT / ".venv" / "bin" / "vmkit-tui"
REPO, ENV = "bench/hostile", "production"
ITEM = b'{"a":1},'
BLOCK = ITEM * 8192  # 64 KiB
CHUNK = b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n"
BIG_SIZE = 100 * 1024 * 1024
SAMPLE_EVERY = 0.2
MIB = 1024 * 1024
BOX = re.compile("[\u2500-\u257f]")  # box drawing
TOKEN_VARS = ("GH_TOKEN", "GH_ENTERPRISE_TOKEN")


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, body: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.body = body
        self.stop = threading.Event()
        self.requests = self.sent = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()  # ends the handlers still writing
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self) -> None:
        server = self.server
        server.requests += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        endless = server.body == "endless"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if endless:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(BIG_SIZE))
        self.end_headers()
        parts = itertools.chain([b"1\r\n[\r\n"], itertools.repeat(CHUNK)) if endless else big_body()
        with contextlib.suppress(OSError):  # the client went away
            for part in parts:
                if server.stop.is_set():
                    break
                self.wfile.write(part)
                server.sent += len(part)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = answer


def big_body():
    """`[{"a":1},…,{"a":1}]` padded with spaces to exactly BIG_SIZE bytes, in 64 KiB parts."""
    items = (BIG_SIZE - 9) // len(ITEM)
    yield b"["
    for _ in range(items // 8192):
        yield BLOCK
    yield ITEM * (items % 8192) + b'{"a":1}]' + b" " * (BIG_SIZE - 9 - items * len(ITEM))


def write_config(folder: Path, port: int) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[github]\napi_url = "http://127.0.0.1:{port}"\n\n'
        f'[paths]\nhistory = "{folder / "history.json"}"\ndata_dir = "{folder / "data"}"\n\n'
        f'[[repos]]\nname = "{REPO}"\n\n[repos.environments.{ENV}]\n'
    )
    return config


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k and k != "VMKIT_CONFIG"}
    for name in TOKEN_VARS:
        env[name] = "ghp_" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(folder / name.lower())
    return env


def tree(process: psutil.Process) -> list[psutil.Process]:
    """The process and its descendants, or [] once it has ended."""
    with contextlib.suppress(psutil.Error):
        if process.status() != psutil.STATUS_ZOMBIE:
            return [process, *process.children(recursive=True)]
    return []


def rss(process: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return process.memory_info().rss
    return 0


def kill(processes: list[psutil.Process]) -> None:
    for each in processes:
        with contextlib.suppress(psutil.Error):
            each.kill()
    psutil.wait_procs(processes, timeout=5)


def watch(pid: int, seconds: float, cap: int, on_sample=None):
    """Sample until the process ends, `seconds` pass or RSS exceeds `cap`: (elapsed, peak, why)."""
    start, peak, why = time.monotonic(), 0, None
    with contextlib.suppress(psutil.NoSuchProcess):  # else it is gone already
        process = psutil.Process(pid)
        while processes := tree(process):
            total = sum(rss(each) for each in processes)
            peak = max(peak, total)
            if on_sample is not None:
                on_sample()
            if total > cap or time.monotonic() - start >= seconds:
                why = "killed" if total > cap else "timeout"
                break
            time.sleep(SAMPLE_EVERY)
    elapsed = time.monotonic() - start
    if why:
        kill(tree(process))
    return elapsed, peak, why


def run_cli(config: Path, folder: Path, seconds: float, cap: int):
    err_path = folder / "stderr.txt"
    with err_path.open("wb") as err:
        command = [str(VMKIT), "--config", str(config), "deploys", REPO, ENV]
        io = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": err}
        popen = subprocess.Popen(command, env=environment(folder), start_new_session=True, **io)
        try:
            elapsed, peak, why = watch(popen.pid, seconds, cap)
        finally:
            if popen.poll() is None:
                kill(tree(psutil.Process(popen.pid)))
            popen.wait()
    lines = err_path.read_text(errors="replace").splitlines()
    return elapsed, peak, why or f"exit {popen.returncode}", "stderr: " + first_line(lines), ""


def run_tui(config: Path, folder: Path, seconds: float, cap: int):
    conf = folder / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    env = environment(folder)

    def tmux(*args: str, check: bool = False) -> str:
        socket = ["tmux", "-L", f"vmkit-hostile-{os.getpid()}", "-f", str(conf)]
        done = subprocess.run([*socket, *args], capture_output=True, env=env, check=check)
        return done.stdout.decode(errors="replace") if done.returncode == 0 else ""

    screen, header = [""], 1  # while the app runs, its top row is the header

    def capture() -> None:
        screen[0] = tmux("capture-pane", "-p", "-S", "-", "-t", "bench") or screen[0]

    command = shlex.join([str(VMKIT), "--config", str(config)])
    tokens = [arg for name in TOKEN_VARS for arg in ("-e", f"{name}={env[name]}")]
    try:
        tmux("new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", *tokens, command)
        pane = tmux("display-message", "-p", "-t", "bench", "#{pane_pid}", check=True)
        elapsed, peak, why = watch(int(pane), seconds, cap, on_sample=capture)
        if why is None:  # exited by itself: the pane stays, with what it printed on the way out
            time.sleep(0.3)
            capture()
            header = 0
            status = tmux("display-message", "-p", "-t", "bench", "#{pane_dead_status}")
            why = f"exit {status.strip() or '?'}"
    finally:
        tmux("kill-server")
    # the header and lines drawn in panes are skipped: messages are outside the panes
    lines = [line for line in screen[0].splitlines()[header:] if not BOX.search(line)]
    return elapsed, peak, why, "screen: " + first_line(lines), screen[0]


def first_line(lines: list[str]) -> str:
    text = next((line.strip() for line in lines if line.strip()), "(empty)")
    return text if len(text) <= 150 else text[:149] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="longest run (default 60)")
    parser.add_argument("--cap-mib", type=int, default=1500, help="kill above this RSS")
    parser.add_argument("--bodies", default="endless,big", help="endless and/or big")
    parser.add_argument("--show-screen", action="store_true", help="print the TUI's last screen")
    args = parser.parse_args()
    cap, endless = args.cap_mib * MIB, []  # endless: (killed, peak MiB) per run
    for body in args.bodies.split(","):
        for program, run in (("cli", run_cli), ("tui", run_tui)):
            with (
                tempfile.TemporaryDirectory(prefix="vmkit-hostile-") as tmp,
                HostileServer(body) as server,
            ):
                folder = Path(tmp)
                config = write_config(folder, server.server_address[1])
                elapsed, peak, status, line, screen = run(config, folder, args.seconds, cap)
                requests, sent = server.requests, server.sent
            killed, mib = status == "killed", round(peak / MIB)
            shown = f"≥{args.cap_mib} (killed)" if killed else str(mib)
            if body == "endless":
                endless.append((killed, mib))
            print(
                f"{program} {body:<7} {elapsed:5.1f} s  {status:<8} peak_rss_mib={shown:<16}"
                f" served {requests} requests, {sent / MIB:,.0f} MiB  {line}",
                flush=True,
            )
            if args.show_screen and screen:
                print(screen.rstrip())
    if endless:
        killed, mib = max(endless)
        print(f"endless_body_peak_rss_mib={f'≥{args.cap_mib} (killed)' if killed else mib}")


if __name__ == "__main__":
    main()
