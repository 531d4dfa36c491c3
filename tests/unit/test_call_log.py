"""The command log's ring and its session files (pure logic and a temporary folder)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from vmkit_tui.__main__ import main
from vmkit_tui.domain.calls import Call, CallLog
from vmkit_tui.frontends.cli.calls import log_calls
from vmkit_tui.store.calls import CallFile, read_calls, session_files, session_of

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_the_ring_keeps_only_the_newest_calls() -> None:
    calls = CallLog(size=5)
    for n in range(12):
        calls.github("api.github.com", f"GET /repos/a/b/{n}", 200, time.perf_counter())
    kept = calls.calls()
    assert [c.seq for c in kept] == [8, 9, 10, 11, 12]
    assert kept[-1].what == "GET /repos/a/b/11"


def test_a_call_is_sanitised_when_recorded() -> None:
    calls = CallLog()
    heard = []
    calls.listen(heard.append)
    calls.ssh("deploy@vm1", f"echo {TOKEN}\x1b]52;c;cm0=\x07 done", 0, time.perf_counter(), "")
    (call,) = calls.calls()
    assert heard == [call]
    assert TOKEN not in call.what and "[REDACTED]" in call.what
    assert "\x1b" not in call.what and "\x07" not in call.line()
    assert call.outcome == "exit 0" and call.matches("redacted")


async def test_calls_are_written_in_batches_and_read_back(tmp_path: Path) -> None:
    file = CallFile(tmp_path, flush_every=0.05)
    calls = CallLog()
    calls.listen(file.add)
    for n in range(3):
        calls.github("h", f"GET /x/{n}", 304, time.perf_counter(), cached=True, remaining=42)
    assert file.path is None  # nothing written by the call itself
    for _ in range(200):
        if file.path is not None and len(list(read_calls(file.path))) == 3:
            break
        await asyncio.sleep(0.01)
    assert file.path is not None

    def fields(found: list[Call]) -> list[tuple[object, ...]]:
        return [(c.seq, c.kind, c.host, c.what, c.status, c.cached, c.remaining) for c in found]

    assert fields(list(read_calls(file.path))) == fields(calls.calls())
    calls.github("h", "GET /y", 200, time.perf_counter())
    await file.aclose()  # writes what is still queued
    assert [c.what for c in read_calls(file.path)][-1] == "GET /y"
    assert file.path.stat().st_mode & 0o777 == 0o600


async def test_files_are_capped_and_only_the_newest_kept(tmp_path: Path) -> None:
    old = [tmp_path / f"calls-20200101T00000{n}Z-1-001.jsonl" for n in range(4)]
    for path in old:
        path.write_text("")
    file = CallFile(tmp_path, keep=3, max_bytes=600, flush_every=0.01)
    calls = CallLog()
    calls.listen(file.add)
    for n in range(12):
        calls.ssh("deploy@vm", f"docker logs --follow app-{n}", 0, time.perf_counter(), "")
        await file.aclose()  # one batch per call: each may start a new file
    files = session_files(tmp_path)
    assert len(files) == 3 and not any(path.exists() for path in old)
    assert all(path.stat().st_size <= 600 for path in files)
    assert {session_of(path) for path in files} == {session_of(file.path)}  # type: ignore[arg-type]
    read = [c.what for path in files for c in read_calls(path)]
    every = [f"docker logs --follow app-{n}" for n in range(12)]
    assert 0 < len(read) < 12 and read == every[-len(read) :]  # the newest, in order


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "calls-x-1-001.jsonl"
    path.write_bytes(
        b'{"seq":1,"at":1.0,"kind":"ssh","host":"h","what":"ls","status":0,"duration":0.1}\n'
        b'{"seq":2,"at":'
    )
    assert [c.what for c in read_calls(path)] == ["ls"]


async def test_log_calls_prints_the_newest_session_and_follows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "calls"
    older = CallFile(folder)
    older._name = "calls-20200101T000000Z-1"
    log = CallLog()
    log.listen(older.add)
    log.ssh("deploy@old", "old command", 0, time.perf_counter(), "")
    await older.aclose()
    newest, log = CallFile(folder), CallLog()
    log.listen(newest.add)
    log.github("api.github.com", "GET /repos/a/b", 200, time.perf_counter(), remaining=4999)
    await newest.aclose()
    assert main(["log-calls", "--data-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and " github api.github.com GET /repos/a/b 200 " in printed[0]
    assert printed[0].endswith("4999 left")
    assert main(["log-calls", "--data-dir", str(tmp_path), "--sessions", "2"]) == 0
    assert "old command exit 0" in capsys.readouterr().out

    looks = []

    def more() -> bool:  # one new call arrives between the first and second look
        if len(looks) == 1:
            log.ssh("deploy@vm", "kamal app details", 0, time.perf_counter(), "")
            newest._write(newest._pending)
        looks.append(1)
        return len(looks) < 3

    out: list[str] = []
    assert log_calls(folder, follow=True, out=out.append, keep_going=more) == 0
    assert [line.split()[4] for line in out] == ["GET", "kamal"]


def test_log_calls_without_files_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log-calls", "--data-dir", str(tmp_path)]) == 1
    assert (
        capsys.readouterr().err.strip() == f"vmkit-tui: no calls recorded in {tmp_path / 'calls'}"
    )
