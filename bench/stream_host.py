"""A stand-in VM for benchmarks: an SSH server whose kamal-proxy log grows at a steady rate.

    .venv/bin/python bench/stream_host.py [--rate 20]

The sandbox VMs print a few lines a minute at 1x speed; this host answers vmkit-tui's
`docker logs --follow … kamal-proxy` with `--rate` kamal-proxy request lines a second, evenly
spaced and stamped with the wall clock, for as long as the client follows. Any other command
(the vmkit-agent journal) prints nothing and waits for the client to go away. No auth is asked.
Prints `port=<port>` and `known_hosts=<line for a known_hosts file>`, then serves until stdin
closes (or SIGTERM). Only asyncssh and the standard library: vmkit_tui is not imported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from datetime import UTC, datetime

import asyncssh


def proxy_line(rng: random.Random, service: str) -> str:
    now = datetime.now(UTC)
    record = {
        "time": f"{now:%Y-%m-%dT%H:%M:%S.%f}Z",
        "level": "INFO",
        "msg": "Request",
        "host": "bench.example.com",
        "port": 443,
        "path": rng.choice(("/", "/up", "/products", "/api/items", "/cart")),
        "request_id": f"{rng.getrandbits(128):032x}",
        "status": rng.choice((200, 200, 200, 304, 404)),
        "service": service,
        "duration": rng.randrange(1_000_000, 90_000_000),
        "method": "GET",
        "client_addr": f"198.51.100.{rng.randrange(1, 254)}",
    }
    stamp = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}000Z"
    return f"{stamp} {json.dumps(record, separators=(',', ':'))}\n"


class NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication required


async def _until_closed(process: asyncssh.SSHServerProcess) -> None:
    with contextlib.suppress(Exception):
        await process.stdin.read()  # the client never closes stdin while it follows


async def serve_command(process: asyncssh.SSHServerProcess, rate: float) -> None:
    command = process.command or ""
    closed = asyncio.ensure_future(_until_closed(process))
    try:
        if "docker" in command and "kamal-proxy" in command:
            rng = random.Random()
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            while not closed.done():
                process.stdout.write(proxy_line(rng, "bench-web"))
                await process.stdout.drain()
                next_at += 1 / rate
                await asyncio.wait([closed], timeout=max(0.0, next_at - loop.time()))
        else:
            await closed
    except (OSError, asyncssh.Error):
        pass
    finally:
        closed.cancel()
        with contextlib.suppress(Exception):
            process.exit(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="lines a second per stream")
    args = parser.parse_args()
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        NoAuth,
        "127.0.0.1",
        0,
        server_host_keys=[key],
        process_factory=lambda process: serve_command(process, args.rate),
    )
    port = server.sockets[0].getsockname()[1]
    public = key.export_public_key("openssh").decode().split()[:2]
    print(f"port={port}", flush=True)
    print(f"known_hosts=[127.0.0.1]:{port} {' '.join(public)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
