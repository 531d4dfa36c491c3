"""The history's errors, each shown to the user as one clear message."""

from __future__ import annotations

from pathlib import Path

_CORRUPT_ADVICE = (
    "Nothing was changed, and writes are refused until the file is repaired or moved aside "
    "(`vmkit-tui history --move-aside` renames it to <name>.corrupt-<UTC time> and a fresh "
    "history starts)."
)


class HistoryError(Exception):
    """Base of every history error the UI shows as one clear message."""


class HistoryBusy(HistoryError):
    """Another process held the history lock longer than the timeout."""


class HistoryCorrupt(HistoryError):
    """The history file cannot be trusted; it is left exactly as it is."""

    def __init__(self, path: Path, problem: str, where: str, advice: str = _CORRUPT_ADVICE) -> None:
        self.path, self.problem, self.where = path, problem, where
        super().__init__(f"history file {path} {problem} ({where}). {advice}")


class UnknownDeploy(HistoryError, KeyError):
    """No deploy with this id in the history (never created, or pruned)."""

    def __init__(self, deploy_id: str) -> None:
        self.deploy_id = deploy_id
        super().__init__(deploy_id)

    def __str__(self) -> str:
        return f"no deploy {self.deploy_id!r} in the history"


class HistoryUnusable(HistoryCorrupt):
    """The history path is not a regular file (a directory, say): a setting to fix, not damage.
    Refused wherever a damaged history is, but never moved aside."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            path,
            f"is {what}, not a history file",
            "whole path",
            "Nothing was changed or moved; point --history or [paths] history at a file.",
        )
