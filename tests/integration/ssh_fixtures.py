"""A throwaway OpenSSH sshd on 127.0.0.1 for interop tests: temp host and user keys, a free
port, `sshd -D` in the foreground so the test owns its pid, `-E` log for when something
fails."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from vmkit_tui.sources.ssh import SshOptions, SshTarget

SSHD = Path("/usr/sbin/sshd")

# Hermetic: nothing from the developer's ~/.ssh or ssh-agent; fast reconnects.
TEST_OPTIONS = SshOptions(
    connect_timeout=5,
    keepalive_interval=1,
    keepalive_count_max=3,
    ssh_config=None,
    use_agent=False,
    reconnect_delay=0.05,
    reconnect_max_delay=0.5,
)


def wait_for(condition: object, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `condition()` until it is true or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # poll interval of the condition wait above


def write_key(path: Path, key: asyncssh.SSHKey) -> Path:
    key.write_private_key(str(path))
    key.write_public_key(str(path) + ".pub")
    path.chmod(0o600)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Sshd:
    directory: Path
    port: int
    host_key: asyncssh.SSHKey
    user_key: Path
    known_hosts: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, directory: Path, extra: tuple[str, ...] = ()) -> Sshd:
        """`extra`: more sshd_config lines (e.g. `AllowTcpForwarding yes` for a jump host)."""
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        write_key(directory / "hostkey", host_key)
        user_key = write_key(directory / "userkey", asyncssh.generate_private_key("ssh-ed25519"))
        (directory / "authorized_keys").write_text((directory / "userkey.pub").read_text())
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {directory / 'hostkey'}",
                    f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"PidFile {directory / 'sshd.pid'}",
                    "StrictModes no",
                    "UsePAM no",
                    "MaxStartups 50",
                    "MaxSessions 50",
                    "LogLevel VERBOSE",
                    *extra,
                    "",
                ]
            )
        )
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(
            f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n"
        )
        server = cls(directory, port, host_key, user_key, known_hosts, directory / "sshd.log")
        server.launch()
        return server

    def launch(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.directory / "sshd_config"), "-E", str(self.log)]
        )
        wait_for(lambda: _port_open(self.port), 10, f"sshd on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def target(self, **changes: object) -> SshTarget:
        fields: dict[str, object] = {
            "user": getpass.getuser(),
            "host": "127.0.0.1",
            "port": self.port,
            "identity_file": self.user_key,
            "known_hosts": self.known_hosts,
        }
        fields.update(changes)
        return SshTarget(**fields)  # type: ignore[arg-type]

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (every sshd below the listener)."""
        assert self.process is not None
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            names[int(entry.name)] = name
        below = {self.process.pid}
        changed = True
        while changed:
            changed = False
            for pid, parent in parents.items():
                if parent in below and pid not in below:
                    below.add(pid)
                    changed = True
        return [pid for pid in below - {self.process.pid} if names.get(pid) == "sshd"]

    def kill_sessions(self) -> int:
        """Drop every client connection abruptly, as a network failure would."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)


# Stand-in for `docker logs` / `journalctl` (see its docstring), run on the "VM" over SSH.
FAKE_LOGS = Path(__file__).with_name("fake_logs.py")


def processes_matching(marker: str) -> list[int]:
    """Pids whose command line contains `marker` (what pgrep -f would find), not ours."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found
