"""`vmkit-tui init [OWNER/REPO …] [--path DIR]`: write a config from the repositories' deploy
workflows and Kamal configs (see `onboard.py` for what is derived and how).

It shows the config it would write (a unified diff when one exists), lists every value it
could not resolve, validates the text by the same rules as a hand-written config, and writes
only when confirmed (`--yes` for scripts), 0600, replacing the old file in one rename.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from pathlib import Path

from vmkit_tui.config import (
    DEFAULT_API_URL,
    Config,
    ConfigError,
    SshConfig,
    load_config_text,
    parse_config_text,
    read_config_text,
)
from vmkit_tui.config_table import toml_string
from vmkit_tui.domain.secret import NoToken, Secret, require_token
from vmkit_tui.domain.text import escaped
from vmkit_tui.frontends.cli.output import say
from vmkit_tui.onboard import InitError, RepoPlan, plan_repos, render_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_init(args: argparse.Namespace, config_path: Path) -> int:
    try:
        existing = read_config_text(config_path)
    except ConfigError as error:  # unreadable or not text: never written over
        say(error)
        return EXIT_USAGE
    current = _current(existing, config_path) if existing is not None else None
    api_url = (args.api_url or (current and current.github.api_url) or DEFAULT_API_URL).rstrip("/")
    try:
        token = (current and current.github.token) or require_token(api_url)
    except NoToken as error:
        say(error)
        return EXIT_USAGE
    try:
        plans = asyncio.run(_plans(api_url, token, args))
    except (InitError, ValueError) as error:
        say(error)
        return EXIT_FAILED
    except Exception as error:  # a GitHub or network failure: one line, no traceback
        from vmkit_tui.sources.github import GitHubError

        if not isinstance(error, GitHubError | OSError):
            raise
        say(f"GitHub at {api_url}: {error}")
        return EXIT_FAILED
    if not plans:
        say("found no repository with a workflow whose workflow_dispatch takes `sha`")
        return EXIT_FAILED
    known_hosts = Path(args.known_hosts).expanduser() if args.known_hosts else None
    text = render_config(
        plans,
        known_hosts=known_hosts,
        preamble=_kept(current, api_url),
        header=["Written by `vmkit-tui init` from each repo's deploy workflow and Kamal config."],
    )
    try:
        parse_config_text(text, config_path)
    except ConfigError as error:
        say(f"the derived config is not valid: {error}")
        return EXIT_USAGE
    secret = current.github.token.reveal() if current and current.github.token else None
    _show(text, existing, config_path, secret)
    _report(plans)
    if existing == text:
        print(f"{config_path} already says this: nothing to write")
        return EXIT_OK
    if not args.yes and not _confirm(config_path):
        print("nothing written")
        return EXIT_FAILED
    _write(config_path, text)
    print(f"wrote {config_path} (readable by you alone)")
    return EXIT_OK


async def _plans(api_url: str, token: Secret, args: argparse.Namespace) -> list[RepoPlan]:
    from vmkit_tui.sources.github import GitHubClient

    path = Path(args.path).expanduser() if args.path else None
    async with GitHubClient(api_url, token) as client:
        return await plan_repos(client, args.repos, path=path)


def _current(text: str, path: Path) -> Config | None:
    """The existing config, when it is valid (its settings outside the repos are kept)."""
    try:
        return load_config_text(text, path)
    except ConfigError as error:
        say(f"{error} (so none of its settings are carried over)")
        return None


def _kept(current: Config | None, api_url: str) -> list[str]:
    """The tables init does not derive, as the existing config has them: [github] (with the
    API URL in use), [paths], [ui], [ssh]."""
    lines = ["[github]", f"api_url = {toml_string(api_url)}"]
    if current is None:
        return lines if api_url != DEFAULT_API_URL else []
    if current.github.token is not None:
        lines.append(f"token = {toml_string(current.github.token.reveal())}")
    paths = [
        (k, v) for k, v in (("history", current.history_path), ("data_dir", current.data_dir)) if v
    ]
    if paths:
        lines += ["", "[paths]", *(f"{key} = {toml_string(str(value))}" for key, value in paths)]
    ui = current.ui
    if ui.bell or ui.theme or ui.keys:
        lines += ["", "[ui]", f"bell = {'true' if ui.bell else 'false'}"]
        lines += [f"theme = {toml_string(ui.theme)}"] if ui.theme else []
        if ui.keys:
            lines += [
                "",
                "[ui.keys]",
                *(f"{toml_string(k)} = {toml_string(v)}" for k, v in ui.keys.items()),
            ]
    if current.ssh.config != SshConfig().config:
        lines += ["", "[ssh]", f"config = {toml_string(str(current.ssh.config or ''))}"]
    return lines


def _show(text: str, existing: str | None, path: Path, secret: str | None) -> None:
    """The new text, or its diff against the old one; a token in either is never shown."""
    if secret:
        text = text.replace(secret, "***")
        existing = existing.replace(secret, "***") if existing is not None else None
    if existing is None:
        print(f"# {path} (new):")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    diff = difflib.unified_diff(
        existing.splitlines(keepends=True),
        text.splitlines(keepends=True),
        f"{path} (now)",
        f"{path} (derived)",
    )
    for line in diff:
        sys.stdout.write(escaped(line.rstrip("\n")) + "\n")


def _report(plans: list[RepoPlan]) -> None:
    for plan in plans:
        for note in plan.notes():
            say(f"{plan.name}: could not resolve {note}")


def _confirm(path: Path) -> bool:
    if not sys.stdin.isatty():
        say("not a terminal: pass --yes to write without asking")
        return False
    try:
        answer = input(f"Write {path}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _write(path: Path, text: str) -> None:
    """0600 from the first byte, then one rename over the old file (as the history is written)."""
    from vmkit_tui.store.history.durable import _write_durably

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_durably(path, text.encode("utf-8"))
