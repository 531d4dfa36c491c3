"""`vmkit-tui config example|init` as a real process: the example shipped in the package is the
documented one and loads; `init` writes it 0600 where vmkit-tui looks, and never overwrites."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.integration.cli_sandbox import ROOT, child_env
from vmkit_tui.config import load_config


def vmkit(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmkit_tui", *argv],
        cwd=ROOT,
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_packaged_example_is_the_documented_one() -> None:
    packaged = (ROOT / "vmkit_tui" / "config.example.toml").read_text()
    assert packaged == (ROOT / "docs" / "config.example.toml").read_text()
    done = vmkit("config", "example")
    assert done.returncode == 0 and done.stdout == packaged


def test_init_writes_the_example_0600_where_it_looks_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "xdg" / "vmkit" / "config.toml"
    env = {**child_env(), "VMKIT_CONFIG": str(path)}
    done = vmkit("config", "init", env=env)
    assert done.returncode == 0, done.stderr
    assert str(path) in done.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == (ROOT / "docs" / "config.example.toml").read_text()
    config = load_config(path)  # ready to edit: it loads as it is
    assert [repo.name for repo in config.repos] and config.source == path

    path.write_text("# mine\n")
    again = vmkit("config", "init", env=env)
    assert again.returncode == 1
    assert again.stderr == (
        f"vmkit-tui: {path} exists already: left as it is (`vmkit-tui config example` prints "
        "the example)\n"
    )
    assert path.read_text() == "# mine\n"

    other = tmp_path / "other.toml"
    assert vmkit("--config", str(other), "config", "init").returncode == 0
    assert other.exists() and os.stat(other).st_mode & 0o077 == 0
