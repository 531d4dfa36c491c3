"""`vmkit-tui log-calls`: the command log of the newest sessions, from their files.

The TUI, the MCP server and each CLI command are processes of their own, each writing its
session's calls under `<data dir>/calls`; this prints the newest `sessions` of them, oldest
call first, and with `follow` goes on printing what the newest session writes (switching to a
newer session when one starts). Lines are sanitised when read back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from vmkit_tui.store.calls import read_calls_from, session_files, session_of

EXIT_OK, EXIT_FAILED = 0, 1
FOLLOW_EVERY = 0.5  # seconds between looks at the files


def log_calls(
    folder: Path,
    *,
    sessions: int = 1,
    follow: bool = False,
    out: Callable[[str], None] = print,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    files = session_files(folder)
    if not files and not follow:
        print(f"vmkit-tui: no calls recorded in {folder}", file=sys.stderr)
        return EXIT_FAILED
    names = sorted({session_of(path) for path in files})[-sessions:]
    seen: dict[Path, int] = {}  # file → the byte offset printed up to
    for path in files:
        if session_of(path) in names:
            _print_new(path, seen, out)
    while follow and keep_going():
        time.sleep(FOLLOW_EVERY)
        files = session_files(folder)
        if not files:
            continue
        newest = session_of(files[-1])
        for path in files:
            if session_of(path) == newest:
                _print_new(path, seen, out)
    return EXIT_OK


def _print_new(path: Path, seen: dict[Path, int], out: Callable[[str], None]) -> None:
    """The calls written to `path` since the last look (a file gone meanwhile: none)."""
    try:
        calls, seen[path] = read_calls_from(path, seen.get(path, 0))
    except OSError:
        return
    for call in calls:
        out(call.line())
