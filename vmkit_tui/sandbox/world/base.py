"""What every part of the world shares: its error, who owns an effect on the timeline, the
intervals that locks and outages span, and the seeded ids and moments they are built from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from vmkit_tui.sandbox.world.kamal_output import LockInfo


class WorldError(Exception):
    """A request the world refuses; the message is the one GitHub (or Kamal) would give."""


Owner = int | str  # a run id, or "kamal:<n>" for a Kamal execution over SSH, or "seed"


@dataclass(eq=False, slots=True)
class _Interval:
    start: datetime
    end: datetime | None
    owner: Owner
    what: str = ""  # an outage's kind: "offline" | "auth" (unused for locks)
    lock: LockInfo | None = None


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _node_id(prefix: str, rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return prefix + "".join(rng.choice(alphabet) for _ in range(14))


def _plus(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
