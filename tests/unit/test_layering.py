"""The package's layers, enforced: who may import whom.

- Textual is imported only by the TUI frontend (statically, and at run time: importing every
  other module leaves `textual` out of `sys.modules`).
- The sandbox is imported only by itself and by the launcher that starts its commands.
- Frontends (tui, cli, mcp) never import each other; what they share lives beside them.
- `domain/` imports nothing else of the package; the core (everything but the frontends, the
  sandbox and the launcher) imports no frontend and no sandbox.

A violation names the importing file, its line and the imported module.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import vmkit_tui

PACKAGE_DIR = Path(vmkit_tui.__file__).resolve().parent
FRONTENDS = ("tui", "cli", "mcp")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> list[tuple[str, int, str, str]]:
    """(importing module, line, imported module, file) for every import, lazy ones included."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        importer = module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            rel = str(path.relative_to(PACKAGE_DIR.parent))
            found.extend((importer, node.lineno, name, rel) for name in names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def frontend_of(name: str) -> str | None:
    for frontend in FRONTENDS:
        if within(name, f"vmkit_tui.frontends.{frontend}"):
            return frontend
    return None


def violations(rule) -> list[str]:
    return [
        f"{file}:{line}: {importer} imports {imported}"
        for importer, line, imported, file in imports()
        if rule(importer, imported)
    ]


def test_textual_only_in_the_tui_frontend() -> None:
    bad = violations(
        lambda importer, imported: (
            within(imported.split(".")[0], "textual") and frontend_of(importer) != "tui"
        )
    )
    assert not bad, "Textual outside frontends/tui:\n" + "\n".join(bad)


def test_sandbox_only_imported_by_itself_and_the_launcher() -> None:
    bad = violations(
        lambda importer, imported: (
            within(imported, "vmkit_tui.sandbox")
            and not within(importer, "vmkit_tui.sandbox")
            and importer != "vmkit_tui.__main__"
        )
    )
    assert not bad, "sandbox imported from outside it:\n" + "\n".join(bad)


def test_frontends_do_not_import_each_other() -> None:
    def crosses(importer: str, imported: str) -> bool:
        source, target = frontend_of(importer), frontend_of(imported)
        return source is not None and target is not None and source != target

    bad = violations(crosses)
    assert not bad, "a frontend imports another:\n" + "\n".join(bad)


def test_domain_imports_nothing_else_of_the_package() -> None:
    bad = violations(
        lambda importer, imported: (
            within(importer, "vmkit_tui.domain")
            and within(imported, "vmkit_tui")
            and not within(imported, "vmkit_tui.domain")
        )
    )
    assert not bad, "domain/ imports the rest of the package:\n" + "\n".join(bad)


def test_core_imports_no_frontend_and_no_sandbox() -> None:
    def core(name: str) -> bool:
        return not (
            within(name, "vmkit_tui.frontends")
            or within(name, "vmkit_tui.sandbox")
            or name == "vmkit_tui.__main__"
        )

    bad = violations(
        lambda importer, imported: (
            core(importer) and within(imported, "vmkit_tui") and not core(imported)
        )
    )
    assert not bad, "core modules import a frontend or the sandbox:\n" + "\n".join(bad)


def test_the_rules_see_every_module_and_lazy_imports() -> None:
    """The checks above are only as good as the import list: make sure it is complete."""
    found = imports()
    importers = {importer for importer, *_ in found}
    assert {"vmkit_tui.domain.models", "vmkit_tui.__main__", "vmkit_tui.service"} <= importers
    # the launcher imports the TUI lazily, inside a function: that import must be seen
    assert any(
        importer == "vmkit_tui.__main__" and within(imported, "vmkit_tui.frontends.tui")
        for importer, _, imported, _ in found
    )


def non_tui_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(vmkit_tui.__path__, "vmkit_tui.")
        if not within(info.name, "vmkit_tui.frontends.tui")
    ]


def test_non_tui_modules_do_not_import_textual_at_run_time() -> None:
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
