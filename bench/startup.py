"""First paint of vmkit-tui over 100 environments × 50 deploys, against a bare Textual app.

    .venv/bin/python bench/startup.py [--runs 7]

Each sample is a fresh process (interpreter start and imports included), run headless at
120×36. The bare app (Header + DataTable with 50 rows + Footer) writes `painted` on stdout once
its first frame is out, then exits. vmkit-tui is measured three times: writing it once its first
frame is out (the whole layout, with the configured repos and environments), and once the
selected environment's 50 deploys are painted, with 5,000 deploys in the history (100
environments) and with 10,000 (200 environments); each then exits. Every program marks its
moment the same way (`call_after_refresh` after the frame, then a write to fd 1), and each sample
is timed twice: from spawn to that line (what the user sees: the ratios below) and from spawn to
the process's exit (the older method: it also counts what the program still does before it can
quit, e.g. finishing the whole-history read). Runs interleave. Prints the medians,
`data_ratio_10000=` and `data_ratio=<deploys painted ÷ bare>` (5,000 deploys; target ≤ 1.5),
`startup_ratio=<first frame ÷ bare>` (target ≤ 1.3), then the same three ratios spawn → exit
(`exit_data_ratio_10000=`, `exit_data_ratio=`, `exit_startup_ratio=`).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bare_app import bare_app

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BARE = bare_app(first_frame_only=True)

OURS = """
import os
import sys
from pathlib import Path
from vmkit_tui.config import parse_config
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.service import DeployService
from vmkit_tui.frontends.tui.app import VmkitApp
from sample_history import sample_config

class FirstPaint(VmkitApp):
    marked = False

    def on_mount(self):  # Textual runs VmkitApp.on_mount too: every class's handler is called
        if sys.argv[2] == "frame":
            self.call_after_refresh(self.painted)

    def _refresh_deploys(self):
        super()._refresh_deploys()
        if sys.argv[2] == "data" and self.query_one("#deploys").row_count:
            self.call_after_refresh(self.painted)

    def painted(self):
        if not self.marked:
            self.marked = True
            os.write(1, b"painted\\n")
            self.exit()

folder = Path(sys.argv[1])
config = parse_config(sample_config(int(sys.argv[3])))
service = DeployService(config, AsyncHistory(History(folder / "history.json")), folder)
FirstPaint(service, spinners=False).run(headless=True, size=(120, 36))
"""


def run(code: str, *args: str) -> tuple[float, float]:
    """Seconds from spawn to the program's `painted` line, and to its exit."""
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=Path(__file__).resolve().parent,
        env={"PYTHONPATH": f"{ROOT}:{Path(__file__).resolve().parent}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        painted = time.perf_counter() - start
        child.stdout.read()
        status = child.wait()
    exited = time.perf_counter() - start
    if status or line != b"painted\n":
        raise SystemExit(f"bench program failed (exit {status}, said {line!r:.60})")
    return painted, exited


def main() -> None:
    from sample_history import sample_creates

    from vmkit_tui.store.history import History

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmkit-startup-bench-"))
    big = folder / "10k"
    try:
        big.mkdir()
        History(folder / "history.json").apply(sample_creates(random.Random(2026)))
        History(big / "history.json").apply(sample_creates(random.Random(2026), repos=20))
        run(BARE)  # warm the page cache for all before measuring
        run(OURS, str(folder), "data", "10")
        run(OURS, str(big), "data", "20")
        names = ("bare", "frame", "data", "data10k")
        painted: dict[str, list[float]] = {name: [] for name in names}
        exited: dict[str, list[float]] = {name: [] for name in names}
        actions = {
            "bare": lambda: run(BARE),
            "frame": lambda: run(OURS, str(folder), "frame", "10"),
            "data": lambda: run(OURS, str(folder), "data", "10"),
            "data10k": lambda: run(OURS, str(big), "data", "20"),
        }
        for n in range(args.runs):
            for name in names[n % 4 :] + names[: n % 4]:
                to_paint, to_exit = actions[name]()
                painted[name].append(to_paint)
                exited[name].append(to_exit)
        for label, samples in (("painted", painted), ("exited", exited)):
            bare_s, frame_s, data_s, big_s = (statistics.median(samples[k]) for k in names)
            print(f"spawn -> {label}:")
            print(
                f"  bare Textual app (Header+DataTable+Footer), first frame: {bare_s * 1000:.0f} ms"
            )
            print(
                f"  vmkit-tui, first frame (layout, repos, environments): {frame_s * 1000:.0f} ms"
            )
            print(f"  vmkit-tui, 50 deploys of the selected environment: {data_s * 1000:.0f} ms")
            print(f"  vmkit-tui, the same with 10,000 deploys: {big_s * 1000:.0f} ms")
        print(f"({args.runs} runs each, interleaved, medians; 100 environments x 50 deploys)")
        for prefix, samples in (("", painted), ("exit_", exited)):
            bare_s, frame_s, data_s, big_s = (statistics.median(samples[k]) for k in names)
            print(f"{prefix}data_ratio_10000={big_s / bare_s:.2f}")
            print(f"{prefix}data_ratio={data_s / bare_s:.2f}")
            print(f"{prefix}startup_ratio={frame_s / bare_s:.2f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
