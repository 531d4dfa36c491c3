"""Who acts, and how: the names every action records in a deploy's audit trail.

The TUI and the CLI act as the local user; the MCP server names its client. Whatever the name
comes from, an action keeps it as plain text of bounded length and refuses an empty one.
"""

from __future__ import annotations

from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.domain.models import Trigger
from vmkit_tui.domain.text import plain

__all__ = ["ACTOR_LIMIT", "checked_actor", "checked_trigger", "local_actor"]

ACTOR_LIMIT = 100  # characters of an actor's name kept


def local_actor() -> str:
    """Who is at the keyboard, for the audit trail."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


def checked_actor(actor: str) -> str:
    """The actor's name as recorded: plain text, at most ACTOR_LIMIT characters, not empty."""
    text = plain(actor).strip() if isinstance(actor, str) else ""
    if not text:
        raise ActionRefused("Who is acting? The actor must be named.")
    return text[:ACTOR_LIMIT]


def checked_trigger(trigger: Trigger | str) -> Trigger:
    try:
        return Trigger(trigger)
    except ValueError:
        raise ActionRefused(f"Unknown trigger: {trigger!r:.20}") from None
