"""The sandbox VMs: one real SSH server per simulated VM, on 127.0.0.1, answering from the world.

Each VM of the world gets its own port (all share one ed25519 host key), so vmkit-tui talks to
the sandbox exactly as to real VMs: host keys checked against a `known_hosts` file, key-only
auth, exec requests parsed by `vm_commands`, output as the real tools print it. Nothing is ever
run on this machine.

The world decides how a VM behaves: an `offline` VM has no listener at all (connections are
refused, open ones are cut, as when a VM goes down), an `auth_refused` VM rejects the key. A
monitor applies those states on every world change (and re-checks every few simulated seconds
while a VM is down, since an outage may end at a moment the world does not announce).

A follow command (`docker logs --follow`, `journalctl --follow`) runs until the client closes
the channel or the connection; that cancels the session's task and with it the world follower.
`stop()` closes every listener and connection and awaits every session task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh

from vmkit_tui.sandbox.servers.vm_commands import (
    Command,
    DockerContainers,
    DockerLogs,
    Flood,
    Journal,
    Kamal,
    Refused,
    docker_line,
    flood_chunks,
    journal_entry,
    parse_command,
    to_bytes,
)
from vmkit_tui.sandbox.world.vms import VmLine
from vmkit_tui.sandbox.world.world import World

__all__ = ["VmSandbox"]

DEFAULT_USER = "deploy"
OFFLINE_RECHECK = 5.0  # simulated seconds between checks while a VM is down
_ONE_MICROSECOND = timedelta(microseconds=1)
# Writing to a channel the client has closed, or a connection that died.
_GONE = (BrokenPipeError, ConnectionError, asyncssh.Error)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _load_or_create_key(path: Path) -> asyncssh.SSHKey:
    """Reuse the key a previous sandbox wrote (the demo's known_hosts stays stable)."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    _write_private(path, key.export_private_key())
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key


@dataclass(eq=False, slots=True)
class _Session:
    """One exec request being answered."""

    vm: str
    process: asyncssh.SSHServerProcess[bytes]
    task: asyncio.Task[None] | None = None
    source: str | None = None  # the docker log it follows ("kamal-proxy" / a container name)


@dataclass(eq=False, slots=True)
class _Listener:
    port: int = 0
    acceptor: asyncssh.SSHAcceptor | None = None
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)


class _VmServer(asyncssh.SSHServer):
    """Auth and connection bookkeeping for one VM: key-only, one user, the world's verdict."""

    def __init__(self, sandbox: VmSandbox, vm: str) -> None:
        self._sandbox = sandbox
        self._vm = vm
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._sandbox._connected(self._vm, conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._sandbox._disconnected(self._vm, self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # everyone must authenticate

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._sandbox._accepts(self._vm, username, key)


class VmSandbox:
    """SSH servers for every VM of `world`; keys and known_hosts live in `key_dir`."""

    def __init__(self, world: World, key_dir: Path, *, user: str = DEFAULT_USER) -> None:
        self.world = world
        self.key_dir = Path(key_dir)
        self.user = user
        self.known_hosts_path = self.key_dir / "known_hosts"
        self.client_key_path = self.key_dir / "id_ed25519"
        self._host_key: asyncssh.SSHKey | None = None
        self._client_public: bytes = b""
        self._host = "127.0.0.1"
        self._listeners: dict[str, _Listener] = {}
        self._sessions: set[_Session] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1") -> None:
        """Listen for every VM (one free port each) and write the key files."""
        self._host = host
        self.key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._host_key = await asyncio.to_thread(
            _load_or_create_key, self.key_dir / "ssh_host_ed25519_key"
        )
        client_key = await asyncio.to_thread(_load_or_create_key, self.client_key_path)
        self._client_public = client_key.public_data
        try:
            for vm in self.world.vms():
                listener = self._listeners[vm.name] = _Listener()
                if not vm.offline:
                    listener.acceptor = await self._listen(vm.name, 0)
                    listener.port = listener.acceptor.get_port()
                else:  # a VM that starts offline still gets its port: reserve one
                    listener.port = await self._reserve_port()
            await asyncio.to_thread(self._write_known_hosts)
        except BaseException:
            await self.stop()
            raise
        self._monitor = asyncio.create_task(self._watch_world())

    async def stop(self) -> None:
        """Close every listener and connection; return once every session task has ended."""
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
            self._monitor = None
        for listener in self._listeners.values():
            await self._close_listener(listener)
        tasks = [session.task for session in self._sessions if session.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> VmSandbox:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ addresses

    def port_of(self, vm_name: str) -> int:
        return self._listeners[vm_name].port

    def host_spec(self, vm_name: str) -> str:
        """`user@127.0.0.1:PORT`: what a config's `hosts` entry for this VM says."""
        return f"{self.user}@{self._host}:{self.port_of(vm_name)}"

    def _write_known_hosts(self) -> None:
        assert self._host_key is not None
        public = self._host_key.export_public_key().decode().strip()
        lines = [f"[{self._host}]:{item.port} {public}\n" for item in self._listeners.values()]
        self.known_hosts_path.write_text("".join(lines))

    async def _reserve_port(self) -> int:
        """A free port for a VM that is offline now: bind, remember, release."""
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, self._host, 0)
        port = int(server.sockets[0].getsockname()[1])
        server.close()
        await server.wait_closed()
        return port

    # ------------------------------------------------------------------ world states

    async def _listen(self, vm: str, port: int) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            self._host,
            port,
            server_factory=lambda: _VmServer(self, vm),
            server_host_keys=[self._host_key],
            process_factory=lambda process: self._open_session(vm, process),
            encoding=None,
            allow_scp=False,
            agent_forwarding=False,
            reuse_address=True,
        )

    async def _close_listener(self, listener: _Listener) -> None:
        acceptor, listener.acceptor = listener.acceptor, None
        if acceptor is not None:
            acceptor.close()
            await acceptor.wait_closed()
        for conn in list(listener.connections):
            conn.abort()

    async def refresh(self) -> None:
        """Apply the world's VM states now: an offline VM stops listening and loses its
        connections; a VM back online listens again on its port. The monitor calls this on
        every world change; tests call it to act on a state they just set."""
        async with self._refreshing:
            for name, listener in self._listeners.items():
                offline = self.world.vm(name).offline
                if offline and listener.acceptor is not None:
                    await self._close_listener(listener)
                elif not offline and listener.acceptor is None:
                    with contextlib.suppress(OSError):  # port taken meanwhile: still unreachable
                        listener.acceptor = await self._listen(name, listener.port)

    async def _watch_world(self) -> None:
        clock = self.world.clock
        while True:
            await self.refresh()
            waits = [asyncio.ensure_future(self.world.changed())]
            if any(listener.acceptor is None for listener in self._listeners.values()):
                waits.append(asyncio.ensure_future(clock.sleep(OFFLINE_RECHECK)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    def _connected(self, vm: str, conn: asyncssh.SSHServerConnection) -> None:
        self._listeners[vm].connections.add(conn)
        if self.world.vm(vm).offline:  # went down before the monitor noticed
            conn.abort()

    def _disconnected(self, vm: str, conn: asyncssh.SSHServerConnection) -> None:
        self._listeners[vm].connections.discard(conn)

    def _accepts(self, vm: str, username: str, key: asyncssh.SSHKey) -> bool:
        return (
            username == self.user
            and key.public_data == self._client_public
            and not self.world.vm(vm).auth_refused
        )

    # ------------------------------------------------------------------ test and demo hooks

    def drop_connections(self, vm_name: str) -> int:
        """Cut every connection to the VM at once (a network failure); returns how many."""
        connections = list(self._listeners[vm_name].connections)
        for conn in connections:
            conn.abort()
        return len(connections)

    def session_count(self, vm_name: str | None = None) -> int:
        """Exec requests being answered (on one VM, or on all)."""
        return sum(1 for s in self._sessions if vm_name is None or s.vm == vm_name)

    def inject_line(self, vm_name: str, source: str, payload: bytes) -> int:
        """Write `payload` (any bytes, even invalid UTF-8 or a megabyte) as one line, stamped
        now, to every `docker logs` stream following `source` (kamal-proxy or a container)
        on the VM; returns how many streams got it. For tests of hostile remote text."""
        line = docker_line(self.world.clock.now(), payload)
        sessions = [s for s in self._sessions if s.vm == vm_name and s.source == source]
        for session in sessions:
            session.process.stdout.write(line)
        return len(sessions)

    # ------------------------------------------------------------------ sessions

    def _open_session(self, vm: str, process: asyncssh.SSHServerProcess[bytes]) -> None:
        session = _Session(vm, process)
        session.task = asyncio.create_task(self._serve(session))
        self._sessions.add(session)

    async def _serve(self, session: _Session) -> None:
        """Answer one exec request; the client closing the channel cancels the answer."""
        process = session.process
        body: asyncio.Future[Any] = asyncio.ensure_future(
            self._execute(session, parse_command(process.command or ""))
        )
        closed: asyncio.Future[Any] = asyncio.ensure_future(process.channel.wait_closed())
        done: set[asyncio.Future[object]] = set()
        try:
            done, _ = await asyncio.wait((body, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (body, closed):
                task.cancel()
            await asyncio.gather(body, closed, return_exceptions=True)
            self._sessions.discard(session)
        if body not in done or closed in done:
            return  # the client went away: nobody to tell the exit status to
        error = body.exception()
        with contextlib.suppress(*_GONE):
            if error is None:
                process.exit(body.result())
            elif not isinstance(error, _GONE):
                process.stderr.write(f"sandbox VM error: {error!r}\n".encode())
                process.exit(1)

    async def _execute(self, session: _Session, command: Command) -> int:
        process = session.process
        if session.process.command is None:
            process.stderr.write(b"This sandbox VM runs commands only, no interactive shell.\n")
            return 1
        if isinstance(command, Refused):
            process.stderr.write(command.message.encode())
            return command.status
        if isinstance(command, DockerLogs):
            return await self._docker_logs(session, command)
        if isinstance(command, DockerContainers):
            return self._docker_containers(session, command)
        if isinstance(command, Journal):
            return await self._journal(session, command)
        if isinstance(command, Kamal):
            return await self._kamal(session, command)
        return await self._flood(session, command)

    async def _select(
        self,
        vm: str,
        source: str,
        start: datetime | None,
        tail: int | None,
        keep: Callable[[VmLine], bool] | None = None,
    ) -> AsyncIterator[VmLine]:
        """The source's lines (those `keep` accepts) from `start` (inclusive) or the last
        `tail` ones, then new ones as the world's clock reaches them; never ends."""
        skip = 0
        if tail is not None:
            shown = self.world.vm_lines(vm, source)
            skip = max(0, sum(1 for line in shown if keep is None or keep(line)) - tail)
        since = None if start is None else start - _ONE_MICROSECOND
        async for line in self.world.follow_vm(vm, source, since):
            if keep is not None and not keep(line):
                continue
            if skip:
                skip -= 1
                continue
            yield line

    def _docker_containers(self, session: _Session, command: DockerContainers) -> int:
        """The VM's app containers as docker prints them with our format (name, state, role
        and destination labels), newest first."""
        vm = self.world.vm(session.vm)
        wanted = command.destination in (None, vm.destination)
        if command.service == vm.service and wanted:
            for container in self.world.containers(session.vm):
                state = "running" if container.running else "exited"
                line = f"{container.name}\t{state}\tweb\t{vm.destination}\n"
                session.process.stdout.write(line.encode())
        return 0

    async def _docker_logs(self, session: _Session, command: DockerLogs) -> int:
        vm, name, stdout = session.vm, command.name, session.process.stdout
        keep: Callable[[VmLine], bool] | None = None
        if name == "kamal-proxy":
            source = "kamal-proxy"
        elif any(container.name == name for container in self.world.containers(vm)):
            source = "app"

            def keep(line: VmLine) -> bool:
                return line.container == name
        else:
            session.process.stderr.write(
                f"Error response from daemon: No such container: {name}\n".encode()
            )
            return 1
        session.source = name
        async for line in self._select(vm, source, command.start, command.tail, keep):
            stdout.write(docker_line(line.at, to_bytes(line.text)))
            await stdout.drain()
        return 0  # not reached: a follow ends when the client goes away

    async def _journal(self, session: _Session, command: Journal) -> int:
        vm, stdout = session.vm, session.process.stdout
        after = command.after
        start = after.at if after is not None else command.since
        previous: datetime | None = None
        ordinal = 0
        async for line in self._select(vm, "vmkit-agent", start, command.lines):
            ordinal = ordinal + 1 if line.at == previous else 0
            previous = line.at
            if after is not None and line.at == after.at and ordinal <= after.ordinal:
                continue  # at or before the cursor: already delivered
            stdout.write(journal_entry(vm, line.at, ordinal, to_bytes(line.text)))
            await stdout.drain()
        return 0  # not reached: a follow ends when the client goes away

    async def _kamal(self, session: _Session, command: Kamal) -> int:
        if not self.world.vm(session.vm).deploy_host:
            session.process.stderr.write(b"sh: 1: kamal: not found\n")
            return 127
        execution = self.world.start_kamal(session.vm, list(command.argv))
        stdout = session.process.stdout
        async for text in execution.lines():
            stdout.write(to_bytes(text) + b"\n")
            await stdout.drain()
        return await execution.wait()

    async def _flood(self, session: _Session, command: Flood) -> int:
        stdout = session.process.stdout
        for chunk in flood_chunks(self.world.clock.now(), command.count):
            stdout.write(chunk)
            await stdout.drain()
        return 0
