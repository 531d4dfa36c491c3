"""`vmkit-tui config example|init`: a ready-to-edit config for those who installed with pip and
have no `docs/` folder. The commented example ships inside the package (`config.example.toml`;
`docs/config.example.toml` is the same text, a test keeps them equal)."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

from vmkit_tui.frontends.cli.output import say

EXIT_OK, EXIT_FAILED = 0, 1


def example_text() -> str:
    return resources.files("vmkit_tui").joinpath("config.example.toml").read_text("utf-8")


def run_config(action: str, path: Path) -> int:
    """`example`: print the example; `init`: write it to `path`, 0600, never over a file."""
    if action == "example":
        sys.stdout.write(example_text())
        return EXIT_OK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        say(f"{path} exists already: left as it is (`vmkit-tui config example` prints the example)")
        return EXIT_FAILED
    except OSError as error:
        say(f"cannot write {path}: {error.strerror}")
        return EXIT_FAILED
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(example_text())
    print(
        f"wrote {path} (readable by you alone): put your repos and hosts in it, then run vmkit-tui"
    )
    return EXIT_OK
