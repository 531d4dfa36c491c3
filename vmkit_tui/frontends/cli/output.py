"""How a CLI command reports: the Failed exception (exit status 1) and one-line messages on
stderr. Used by the commands and by the waiting machinery they share."""

from __future__ import annotations

import sys

from vmkit_tui.domain.text import escaped


class Failed(Exception):
    """The action was refused, aborted or failed (exit status 1); `str()` is one line."""


def say(message: object) -> None:
    """One line for the user on stderr (anything unprintable in it escaped)."""
    print(f"vmkit-tui: {escaped(str(message))}", file=sys.stderr)
