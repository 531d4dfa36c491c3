"""The errors the deploy actions raise (light: the frontends import them without the GitHub and
SSH stacks)."""

from __future__ import annotations

__all__ = ["ActionError", "ActionRefused", "ClaimHeld", "UnknownTarget"]


class ActionError(Exception):
    """An action could not be carried out; `str()` is one sentence for the user."""


class ActionRefused(ActionError):
    """Refused before anything was recorded or sent (bad input, busy, or a failed check)."""


class UnknownTarget(ActionRefused):
    """The target names nothing in the history, or several commits (bad usage, not a failed
    check: the CLI exits 2)."""


class ClaimHeld(ActionRefused):
    """A teammate's older deploy on the environment is unfinished (the team history): ours was
    withdrawn and nothing was sent. The same action with `force` goes past it."""
