"""Only vmkit_tui.frontends.tui may import Textual: services, CLI, MCP server and sandbox stay UI-free."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import vmkit_tui


def non_tui_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(vmkit_tui.__path__, "vmkit_tui."):
        if info.name.startswith("vmkit_tui.frontends.tui"):
            continue
        names.append(info.name)
    return names


def test_non_tui_modules_do_not_import_textual() -> None:
    modules = non_tui_modules()
    assert "vmkit_tui.domain.models" in modules and "vmkit_tui.config" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"textual imported by non-TUI modules: {result.stdout}"
