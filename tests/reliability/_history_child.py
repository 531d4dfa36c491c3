"""Child processes for the history reliability tests (run as a script, never collected).

    zygote PATH           read commands on stdin: `spawn` forks a writer that appends to PATH
                          forever and reports every acknowledged event as `ack <event_id>`;
                          `reap PID` waits for a (killed) writer and answers `reaped PID`.
                          Forking from a process that already imported everything makes a
                          respawn cost about a millisecond instead of a whole interpreter start.
    append PATH ID COUNT  wait for `go` on stdin, append COUNT notes to deploy ID one call at a
                          time, print each stored event id, exit.

Lines go out with a single os.write each: a writer killed by SIGKILL never leaves half a line,
and everything it wrote before dying precedes the zygote's `reaped` answer in the pipe.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from tests.unit.history_samples import created, make_deploy, note
from vmkit_tui.store.history import History


def send(*lines: str) -> None:
    os.write(1, "".join(f"{line}\n" for line in lines).encode())


def write_forever(path: Path) -> None:
    """Creates, appends and batches in a random mix; acks only what a call returned."""
    rng = random.Random()  # seeded from os.urandom: each forked writer differs
    history = History(path, keep=100_000)  # no pruning: every acked event must stay
    deploy_ids = [record.id for record in history.records()]
    while True:
        roll = rng.random()
        if roll < 0.2:
            deploy = make_deploy(rng.randrange(10_000), environment=f"e{rng.randrange(40)}")
            result = history.create_deploy(deploy, [created(deploy)])
            deploy_ids.append(deploy.id)
            send(*(f"ack {event.event_id}" for event in result.record.events))
        elif roll < 0.3:
            deploys = [make_deploy(rng.randrange(10_000), environment="batch") for _ in range(2)]
            events = [note(rng.choice(deploy_ids), "batched") for _ in range(2)]
            outcome = history.apply([(d, [created(d)]) for d in deploys], events)
            deploy_ids.extend(d.id for d in deploys)
            acked = [e for r in outcome.records for e in r.events] + list(outcome.events)
            send(*(f"ack {event.event_id}" for event in acked if event is not None))
        else:
            events = [note(rng.choice(deploy_ids), "x" * rng.randrange(200)) for _ in range(3)]
            stored = history.append_events(events[: rng.randrange(1, 4)])
            send(*(f"ack {event.event_id}" for event in stored))


def zygote(path: Path) -> None:
    for command in sys.stdin:
        verb, *args = command.split()
        if verb == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    write_forever(path)
                finally:
                    os._exit(1)
            send(f"pid {pid}")
        elif verb == "reap":
            os.waitpid(int(args[0]), 0)
            send(f"reaped {args[0]}")


def append(path: Path, deploy_id: str, count: int) -> None:
    history = History(path, lock_timeout=60)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected go")
    for n in range(count):
        (stored,) = history.append_events([note(deploy_id, f"{os.getpid()}:{n}")])
        send(stored.event_id)


if __name__ == "__main__":
    mode, target, *rest = sys.argv[1:]
    if mode == "zygote":
        zygote(Path(target))
    else:
        append(Path(target), rest[0], int(rest[1]))
