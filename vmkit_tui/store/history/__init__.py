"""The deploy history: one crash-safe TinyDB JSON file that several processes share.

Two TUIs, the CLI and the MCP server may all read and write the same file at once, so every write
is one whole read-modify-write under an exclusive lock, and a write never touches the file in place:
it builds the new file beside it, makes it durable, then atomically swaps it in. Nothing here imports
Textual, and every call blocks (file I/O, lock waits): async code uses `AsyncHistory`.

`documents` holds the file format and its checks, `scan` the one-environment read of its bytes,
`durable` the locked atomic writes, `storage` TinyDB's side of them, `history` the operations,
`aio` their asyncio wrapper; the names below are what the rest of vmkit-tui uses.
"""

from vmkit_tui.store.history.aio import AsyncHistory
from vmkit_tui.store.history.documents import FORMAT, VERSION
from vmkit_tui.store.history.durable import DEFAULT_LOCK_TIMEOUT, move_aside
from vmkit_tui.store.history.errors import (
    HistoryBusy,
    HistoryCorrupt,
    HistoryError,
    HistoryUnusable,
    UnknownDeploy,
)
from vmkit_tui.store.history.history import (
    DEFAULT_KEEP,
    ApplyResult,
    CreateResult,
    History,
    default_history_path,
)

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_LOCK_TIMEOUT",
    "FORMAT",
    "VERSION",
    "ApplyResult",
    "AsyncHistory",
    "CreateResult",
    "History",
    "HistoryBusy",
    "HistoryCorrupt",
    "HistoryError",
    "HistoryUnusable",
    "UnknownDeploy",
    "default_history_path",
    "move_aside",
]
