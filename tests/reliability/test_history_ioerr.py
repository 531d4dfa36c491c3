"""Injected I/O errors, as SQLite tests its own writes: the N-th write-path call fails with
ENOSPC, N upward until an attempt runs clean. After each failure the file is byte-for-byte the
old state or the new one, no temp file is left, and a retry with the same ids never duplicates."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.unit.history_samples import created, make_deploy, note
from vmkit_tui.store.history import History

FAULTY = ("write", "fsync", "replace")  # every os call of the durable write path
STORED = make_deploy(1, deploy_id="0123456789ab")
NEW = make_deploy(2, deploy_id="ba9876543210", run_id=5)

OPERATIONS: dict[str, Callable[[History], object]] = {
    "append": lambda history: history.append_events([note(STORED.id, "again", event_id="e-1")]),
    "create": lambda history: history.create_deploy(
        NEW, [replace(created(NEW), event_id="c-2"), note(NEW.id, event_id="e-2")]
    ),
}


def copy_of(source: Path, folder: Path) -> Path:
    folder.mkdir()
    return Path(shutil.copy2(source, folder / source.name))


def failing_at(n: int, calls: dict[str, Any], real: Callable[..., Any], name: str) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == n:
            calls["failed"] = name
            raise OSError(errno.ENOSPC, f"injected at {name}")
        return real(*args, **kwargs)

    return call


@pytest.mark.parametrize("operation", OPERATIONS)
def test_injected_enospc_leaves_old_or_new_and_retries_never_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    run = OPERATIONS[operation]
    base = tmp_path / "base" / "history.json"
    History(base).create_deploy(STORED, [created(STORED), note(STORED.id, "x" * 5000)])
    old = base.read_bytes()
    reference = copy_of(base, tmp_path / "reference")
    run(History(reference))
    new = reference.read_bytes()
    assert new != old
    outcomes: list[tuple[int, str, str]] = []
    for n in range(1, 100):
        path = copy_of(base, tmp_path / f"n{n}")
        calls: dict[str, Any] = {"count": 0, "failed": ""}
        with monkeypatch.context() as patch:
            for name in FAULTY:
                patch.setattr(os, name, failing_at(n, calls, getattr(os, name), name))
            try:
                run(History(path))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC and calls["failed"], exc
        if not calls["failed"]:
            assert path.read_bytes() == new
            break
        state = {old: "old", new: "new"}.get(path.read_bytes(), "OTHER")
        outcomes.append((n, calls["failed"], state))
        assert state != "OTHER", outcomes
        assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == [], outcomes
        run(History(path))  # the caller retries with the same ids
        assert path.read_bytes() == new, f"the retry after {outcomes[-1]} did not converge"
    else:
        pytest.fail(f"faults never stopped firing: {outcomes}")
    print(f"ioerr {operation}: {len(outcomes)} injected failures {outcomes}")
    assert {name for _n, name, _state in outcomes} == set(FAULTY), outcomes
    # Before os.replace the old file stays; a failed folder fsync after it means "committed".
    assert {state for _n, _name, state in outcomes} == {"old", "new"}, outcomes
