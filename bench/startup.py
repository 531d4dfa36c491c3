"""First paint of vmkit-tui over 100 environments × 50 deploys, against a bare Textual app.

    .venv/bin/python bench/startup.py [--runs 7]

Each sample is a fresh process (interpreter start and imports included), run headless at
120×36, timed from spawn to exit. The bare app (Header + DataTable with 50 rows + Footer) exits
after its first frame. vmkit-tui is measured three times: exiting after its first frame (the
whole layout, with the configured repos and environments; the history is read right after it),
and exiting once the selected environment's 50 deploys are painted, with 5,000 deploys in the
history (100 environments) and with 10,000 (200 environments). Runs interleave. Prints the
medians, `data_ratio_10000=` and `data_ratio=<deploys painted ÷ bare>` (5,000 deploys; target
≤ 1.5), and last `startup_ratio=<first frame ÷ bare>` (target ≤ 1.3).
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
import sys
from pathlib import Path
from vmkit_tui.config import parse_config
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.service import DeployService
from vmkit_tui.frontends.tui.app import VmkitApp
from sample_history import sample_config

class FirstPaint(VmkitApp):
    def on_mount(self):  # Textual runs VmkitApp.on_mount too: every class's handler is called
        if sys.argv[2] == "frame":
            self.call_after_refresh(self.exit)

    def _refresh_deploys(self):
        super()._refresh_deploys()
        if self.query_one("#deploys").row_count:
            self.call_after_refresh(self.exit)

folder = Path(sys.argv[1])
config = parse_config(sample_config(int(sys.argv[3])))
service = DeployService(config, AsyncHistory(History(folder / "history.json")), folder)
FirstPaint(service, spinners=False).run(headless=True, size=(120, 36))
"""


def run(code: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        cwd=Path(__file__).resolve().parent,
        env={"PYTHONPATH": f"{ROOT}:{Path(__file__).resolve().parent}", "PATH": "/usr/bin:/bin"},
    )
    return time.perf_counter() - start


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
        samples: dict[str, list[float]] = {"bare": [], "frame": [], "data": [], "data10k": []}
        actions = {
            "bare": lambda: run(BARE),
            "frame": lambda: run(OURS, str(folder), "frame", "10"),
            "data": lambda: run(OURS, str(folder), "data", "10"),
            "data10k": lambda: run(OURS, str(big), "data", "20"),
        }
        for n in range(args.runs):
            order = list(actions)[n % 4 :] + list(actions)[: n % 4]
            for name in order:
                samples[name].append(actions[name]())
        bare_s, frame_s, data_s, big_s = (
            statistics.median(samples[k]) for k in ("bare", "frame", "data", "data10k")
        )
        print(
            f"bare Textual app (Header+DataTable+Footer), first frame: median {bare_s * 1000:.0f} ms"
        )
        print(
            f"vmkit-tui, first frame (layout, repos, environments): median {frame_s * 1000:.0f} ms"
        )
        print(
            f"vmkit-tui, 50 deploys of the selected environment painted: median {data_s * 1000:.0f} ms"
        )
        print(f"vmkit-tui, the same with 10,000 deploys: median {big_s * 1000:.0f} ms")
        print(f"({args.runs} runs each, interleaved; history of 100 environments x 50 deploys)")
        print(f"data_ratio_10000={big_s / bare_s:.2f}")
        print(f"data_ratio={data_s / bare_s:.2f}")
        print(f"startup_ratio={frame_s / bare_s:.2f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
