"""Log spool throughput, one run: is writing a deploy's log ever the bottleneck?

    .venv/bin/python bench/spool.py [--lines 1000000] [--batch 1000] [--dir DIR]

Appends `--lines` short records (~60 bytes, like a busy app's request log) with
`SpoolWriter.append_many` in batches of `--batch` (roughly what one SSH read delivers), then
opens the spool cold with and without its index, runs a search that must scan to the end, and
counts every match of a term (the log pane's `/`) with `find_all` against a line-by-line walk.
Prints each figure and last `spool_append_lines_per_s=<n>` (target: several hundred thousand).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmkit_tui.store.spool import LogRecord, SpoolReader, SpoolWriter, index_path, spool_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.dir or Path(tempfile.mkdtemp(prefix="vmkit-spool-bench-"))
    path = spool_path(data_dir, "0123456789ab")
    start = datetime.now(UTC)
    batches = [
        [
            LogRecord(
                start + timedelta(microseconds=i * 37),
                "vm1",
                "app",
                f'I, [{i}] INFO -- : Completed 200 OK in {i % 97}ms "GET /orders/{i}"',
            )
            for i in range(first, min(first + args.batch, args.lines))
        ]
        for first in range(0, args.lines, args.batch)
    ]

    began = time.perf_counter()
    with SpoolWriter(path) as writer:
        for batch in batches:
            writer.append_many(batch)
    append_s = time.perf_counter() - began
    size_mb = path.stat().st_size / 1e6

    began = time.perf_counter()
    with SpoolReader(path) as reader:
        open_indexed_s = time.perf_counter() - began
        count = len(reader)
    index_path(path).unlink()
    began = time.perf_counter()
    with SpoolReader(path) as reader:
        open_scan_s = time.perf_counter() - began
        began = time.perf_counter()
        found = reader.search(f"/orders/{args.lines - 1}", 0)
        search_s = time.perf_counter() - began

        # The log pane's search: count every match of a term (~1% of lines), with the spool's
        # own search and, as a baseline in the same run, line by line as the view used to.
        term = "/orders/99"
        began = time.perf_counter()
        matches = reader.find_all(term)
        find_all_s = time.perf_counter() - began
        began = time.perf_counter()
        walked = [i for i in range(len(reader)) if term in reader.line(i).text.casefold()]
        walk_s = time.perf_counter() - began

    assert count == args.lines and found == args.lines - 1 and matches == walked
    print(f"lines={args.lines} batch={args.batch} log_mb={size_mb:.1f}")
    print(f"append_s={append_s:.2f}")
    print(f"open_with_index_s={open_indexed_s:.3f} open_without_index_s={open_scan_s:.3f}")
    print(f"search_to_end_s={search_s:.3f}")
    print(
        f"count_matches={len(matches)} find_all_s={find_all_s:.3f} "
        f"line_by_line_s={walk_s:.3f} speedup={walk_s / find_all_s:.1f}x"
    )
    print(f"spool_append_lines_per_s={args.lines / append_s:.0f}")


if __name__ == "__main__":
    main()
