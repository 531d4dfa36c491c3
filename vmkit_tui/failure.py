"""What ends a command, as one line and an exit status: the launcher and the CLI's runner
both report through `one_line`, so a bad config, a history problem or a failed file operation
never shows a traceback, and what is quoted is escaped (`domain.text.escaped`)."""

from __future__ import annotations

from vmkit_tui.config import ConfigError
from vmkit_tui.domain.text import escaped
from vmkit_tui.store.history.errors import HistoryCorrupt, HistoryError, HistoryUnusable

EXIT_FAILED, EXIT_USAGE = 1, 2
HANDLED = (ConfigError, HistoryError, OSError)


def one_line(error: BaseException) -> tuple[int, str]:
    """(exit status, the line after "vmkit-tui: ") for an error in HANDLED: 2 for a bad config
    or history file, 1 for an operation that failed (a file that cannot be written…)."""
    if isinstance(error, ConfigError | HistoryCorrupt | HistoryUnusable):
        return EXIT_USAGE, escaped(str(error))
    if isinstance(error, OSError):
        return EXIT_FAILED, escaped(os_error_line(error))
    return EXIT_FAILED, escaped(str(error))


def os_error_line(error: OSError) -> str:
    """'PATH: what went wrong' (both paths for a rename), else the system's own words."""
    what = error.strerror or str(error) or type(error).__name__
    if error.filename is None:
        return what
    where = str(error.filename)
    if error.filename2 is not None:
        where += f" → {error.filename2}"
    return f"{where}: {what}"
