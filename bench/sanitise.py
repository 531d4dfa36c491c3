"""The one sanitiser's cost per line: is showing or searching a million log lines still cheap?

    .venv/bin/python bench/sanitise.py [--lines 200000]

Runs `sanitise` (the CLI, MCP and TUI search path), `sanitise_sgr` (the log view) and
`present.log_line` (one `logs` output line) over realistic app log lines, over coloured lines and
over hostile ones (escapes, a token, bidi and zero-width characters), best of 5 runs each, next to
`plain` (stripping alone, what the TUI did before) measured in the same run. Prints ns per line
for each and last `sanitise_vs_plain_ascii_ratio=<r>`: what redaction and placeholders add to the
common ASCII case.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.domain.text import plain, sanitise, sanitise_sgr
from vmkit_tui.frontends.present import log_line
from vmkit_tui.store.spool import LogRecord

TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"


def per_line_ns(function: Callable[[object], object], items: Sequence[object]) -> float:
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - began)
    return best / len(items) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    count = parser.parse_args().lines
    ascii_lines = [
        f'I, [{i}] INFO -- : Completed 200 OK in {i % 97}ms "GET /orders/{i}?page=2"'
        for i in range(count)
    ]
    coloured = [f"\x1b[32m{line}\x1b[0m" for line in ascii_lines]
    hostile = [f"\x1b]0;t\x07{line} {TOKEN} \u202eexe\u200b" for line in ascii_lines]
    records = [LogRecord(datetime(2026, 1, 1, tzinfo=UTC), "vm1", "app", t) for t in ascii_lines]

    plain_ns = per_line_ns(plain, ascii_lines)  # type: ignore[arg-type]
    ascii_ns = per_line_ns(sanitise, ascii_lines)
    print(f"lines={count}")
    print(f"plain_ascii_ns={plain_ns:.0f}")
    print(f"sanitise_ascii_ns={ascii_ns:.0f}")
    print(f"sanitise_sgr_ascii_ns={per_line_ns(sanitise_sgr, ascii_lines):.0f}")  # type: ignore[arg-type]
    print(f"sanitise_sgr_coloured_ns={per_line_ns(sanitise_sgr, coloured):.0f}")  # type: ignore[arg-type]
    print(f"sanitise_hostile_ns={per_line_ns(sanitise, hostile):.0f}")
    print(f"cli_log_line_ns={per_line_ns(log_line, records):.0f}")  # type: ignore[arg-type]
    print(f"sanitise_vs_plain_ascii_ratio={ascii_ns / plain_ns:.1f}")


if __name__ == "__main__":
    main()
