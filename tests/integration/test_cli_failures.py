"""Every failure of the real `vmkit-tui` process is one line with the documented exit status,
never a traceback (issue 11 §2, §3, §5).

The conditions are real: a full or read-only filesystem is a small tmpfs (mounted when this
process may mount, else those cases are skipped, saying so), a lock that cannot be opened is a
directory in its place (fails even for root), a config folder that cannot be looked at is a
path component longer than the system allows, and a GitHub that never stops answering is a tiny
HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.cli_sandbox import REPO, ROOT, Run, Sandbox, child_env, run_vmkit

pytest_plugins = ["tests.integration.cli_fixtures"]

CONTROL = ("\x00", "\x07", "\x1b", "\x9b", "\u202e")


def vmkit(*argv: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> Run:
    return run_vmkit(argv, env=env, timeout=timeout)


def one_line(run: Run, code: int) -> str:
    """The single stderr line of a run that ended with `code`."""
    assert run.code == code, run.err
    assert "Traceback" not in run.err, run.err
    assert run.err.count("\n") == 1 and run.err.startswith("vmkit-tui: "), run.err
    assert not any(char in run.err for char in CONTROL), repr(run.err)
    return run.err


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)]
    if shutil.which("mount") is None or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("this process may not mount a tmpfs (needs root with CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write until the filesystem says it is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


@contextlib.contextmanager
def unwritable_history(sandbox: Sandbox, tmp_path: Path, condition: str) -> Iterator[Path]:
    """A copy of the sandbox's history that reads fine and cannot be written."""
    assert sandbox.config.history_path is not None
    if condition == "lock is a directory":
        path = tmp_path / "history.json"
        shutil.copy(sandbox.config.history_path, path)
        (tmp_path / "history.json.lock").mkdir()
        yield path
        return
    with tmpfs(tmp_path / "fs", "1m") as folder:
        path = folder / "history.json"
        shutil.copy(sandbox.config.history_path, path)
        (folder / "history.json.lock").touch()
        if condition == "disk full":
            fill(folder)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield path


def dispatched_runs(sandbox: Sandbox) -> int:
    runs = sandbox.world(lambda world: world.runs(REPO, include_future=True))
    assert isinstance(runs, list)
    return sum(run.event == "workflow_dispatch" for run in runs)


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("lock is a directory", "Is a directory"),
        ("disk full", "No space left on device"),
        ("read-only", "Read-only file system"),
    ],
)
def test_rollback_whose_record_cannot_be_written_sends_nothing(
    shared: Sandbox, tmp_path: Path, condition: str, said: str
) -> None:
    before = dispatched_runs(shared)
    with unwritable_history(shared, tmp_path, condition) as history:
        kept = history.read_bytes()
        done = vmkit(*shared.args("--history", str(history), "rollback", REPO, "staging", "--yes"))
        assert history.read_bytes() == kept
    line = one_line(done, 1)
    assert "nothing was sent: the deploy could not be recorded in" in line and said in line
    assert "Roll back" in done.out  # the preflight ran: the refusal came from the write
    assert dispatched_runs(shared) == before


def test_move_aside_with_a_lock_that_cannot_be_opened(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text("{not json")
    (tmp_path / "history.json.lock").mkdir()
    line = one_line(vmkit("--history", str(history), "history", "--move-aside"), 1)
    assert f"{history}.lock: Is a directory" in line
    assert history.read_text() == "{not json"


def test_move_aside_on_a_read_only_filesystem(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "1m") as folder:
        history = folder / "history.json"
        history.write_text("{not json")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        line = one_line(vmkit("--history", str(history), "history", "--move-aside"), 1)
        assert f"{history}.lock: Read-only file system" in line
        assert history.read_text() == "{not json"


def test_a_history_path_that_is_a_directory_is_named_and_never_moved(tmp_path: Path) -> None:
    folder = tmp_path / "history.json"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    for argv in (("history",), ("history", "--move-aside")):
        line = one_line(vmkit("--history", str(folder), *argv), 2)
        assert "is a directory, not a history file" in line and "permissions" not in line
    assert (folder / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "history.json.lock"]


def test_a_config_folder_that_cannot_be_looked_at(tmp_path: Path) -> None:
    env = child_env()
    env["VMKIT_CONFIG"] = str(tmp_path / ("x" * 300) / "config.toml")  # ENAMETOOLONG
    line = one_line(vmkit("--history", str(tmp_path / "h.json"), "history", env=env), 2)
    assert "cannot look at it: File name too long" in line


REPO_TABLE = '[[repos]]\nname = "acme/web"\n[repos.environments.production]\n'


CONFIG_CASES = [
    "token-space",
    "token-newline",
    "token-non-ascii",
    "nested-arrays",
    "nested-tables",
    "unknown-theme",
    "repo-dotdot",
    "repo-dot",
    "port-99999",
    "port-0",
    "host-10000",
    "fullwidth-port",
    "host-newline",
    "nul-in-path",
    "bel-in-keys",
    "osc-in-environment",
]


@pytest.mark.parametrize(
    ("toml", "key_path"),
    [
        ('[github]\ntoken = "ghp_abc def"\n', "github.token"),
        ('[github]\ntoken = "ghp_abc\\ndef"\n', "github.token"),
        ('[github]\ntoken = "ghp_abcdéf"\n', "github.token"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "nested too deeply"),
        ('[ui]\ntheme = "no-such-theme"\n', "ui.theme"),
        ('[[repos]]\nname = "acme/.."\n[repos.environments.production]\n', "repos[0].name"),
        ('[[repos]]\nname = "acme/."\n[repos.environments.production]\n', "repos[0].name"),
        ('[github]\napi_url = "http://127.0.0.1:99999"\n', "github.api_url"),
        ('[github]\napi_url = "http://127.0.0.1:0"\n', "github.api_url"),
        (f'[github]\napi_url = "https://{"a" * 10000}.example"\n', "github.api_url"),
        (REPO_TABLE + 'hosts = ["deploy@host:２２"]\n', "hosts[0]"),
        (REPO_TABLE + 'hosts = ["deploy@ho\\nst"]\n', "hosts[0]"),
        ('[paths]\nhistory = "/tmp/a\\u0000b"\n', "paths.history"),
        (
            '[ui.keys]\n"deploy.rollback" = "R\\u0007"\n',
            'ui.keys.deploy.rollback: expected keys such as ctrl+r or R, got "R\\x07"',
        ),
        (
            '[[repos]]\nname = "acme/web"\n[repos.environments."a\\u001b]0;pwned\\u0007"]\n',
            "repos[0].environments.a\\x1b]0;pwned\\x07",
        ),
    ],
    ids=CONFIG_CASES,
)
def test_a_config_that_must_be_refused_is_one_line_naming_the_key(
    tmp_path: Path, toml: str, key_path: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    config.chmod(0o600)
    line = one_line(vmkit("--config", str(config), "history"), 2)
    assert key_path in line
    assert "ghp_" not in line


def test_no_token_for_an_enterprise_host_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[github]\napi_url = "http://127.0.0.1:9/api/v3"\n{REPO_TABLE}')
    env = {k: v for k, v in child_env().items() if "TOKEN" not in k}
    env["GH_TOKEN"] = "ghp_" + "a" * 36  # a github.com token is not sent to another host
    env["PATH"] = os.defpath  # no `gh` to ask
    argv = ("--config", str(config), "--history", str(tmp_path / "h.json"))
    line = one_line(vmkit(*argv, "deploys", "acme/web", "production", env=env), 2)
    assert "No GitHub token found for 127.0.0.1. Set GH_ENTERPRISE_TOKEN" in line


# ---------------------------------------------------------------- a GitHub that never stops


class EndlessServer(ThreadingHTTPServer):
    """Answers every request 200 with JSON that never ends (`endless`) or a declared 100 MB."""

    daemon_threads = True

    def __init__(self, body: str) -> None:
        super().__init__(("127.0.0.1", 0), EndlessHandler)
        self.body = body
        self.stop = threading.Event()


class EndlessHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EndlessServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        block = b'{"a":1},' * 8192
        if self.server.body == "endless":
            self.send_header("Transfer-Encoding", "chunked")
            parts = itertools.chain(
                [b"1\r\n[\r\n"], itertools.repeat(b"%x\r\n%s\r\n" % (len(block), block))
            )
        else:
            self.send_header("Content-Length", str(100 * 1024 * 1024))
            parts = itertools.chain([b"["], itertools.repeat(block))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away: what it should do
            for part in parts:
                if self.server.stop.is_set():
                    break
                self.wfile.write(part)
        self.close_connection = True


# The real CLI (`vmkit_tui.__main__.main`), then its own peak RSS from /proc (VmHWM is per
# address space, so unlike wait4's ru_maxrss it does not count the test process forked from).
PEAK_PROBE = """
import sys
from vmkit_tui.__main__ import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status, open(sys.argv[0] + ".hwm", "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


@pytest.mark.parametrize("body", ["endless", "100 MB"])
def test_a_never_ending_answer_is_refused_in_bounded_memory(tmp_path: Path, body: str) -> None:
    server = EndlessServer(body)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[github]\napi_url = "http://127.0.0.1:{server.server_address[1]}"\n{REPO_TABLE}'
        )
        env = {k: v for k, v in child_env().items() if "TOKEN" not in k}
        env["GH_ENTERPRISE_TOKEN"] = "ghp_" + "a" * 36
        argv = ["--config", str(config), "--history", str(tmp_path / "h.json")]
        probe = tmp_path / "probe.py"
        probe.write_text(PEAK_PROBE)
        child = subprocess.Popen(
            [sys.executable, str(probe), *argv, "deploys", "acme/web", "production"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stderr is not None
        err = child.stderr.read()  # until the child exits
        child.wait(timeout=60)
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "the answer is over 8 MB" in err and "refused and not retried" in err
    peak_kib = int((tmp_path / "probe.py.hwm").read_text())
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib // 1024} MiB"
