"""The `vmkit-tui` command: argument parsing and exit codes, nothing else.

Exit status: 0 done, 1 the action failed, 2 bad usage, config or history file. Heavy modules
(asyncssh, aiohttp, the TUI) are imported inside the subcommand that needs them, so every
command starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vmkit_tui import __version__
from vmkit_tui.config import Config, ConfigError, default_data_dir, load_config, resolve_config_path
from vmkit_tui.heap import keep_heap_small

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmkit-tui",
        description="Keyboard-driven dashboard for VMKit deploys: history, live logs, rollback, cancel.",
    )
    parser.add_argument("--version", action="version", version=f"vmkit-tui {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $VMKIT_CONFIG, then the user config dir)",
    )
    parser.add_argument(
        "--history",
        metavar="PATH",
        help="history file (default: from the config, then the user data dir)",
    )
    parser.add_argument(
        "--readonly", action="store_true", help="hide and refuse rollback, cancel and deploy"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    history = commands.add_parser("history", help="print the recorded deploys per environment")
    history.add_argument(
        "--json", action="store_true", help="machine-readable output (one JSON document)"
    )
    history.add_argument(
        "--move-aside",
        action="store_true",
        help="rename a corrupt history file to <name>.corrupt-<UTC time> so a fresh one can start",
    )
    for name, help_text, speed in (
        (
            "demo",
            "the dashboard on a built-in sandbox (simulated GitHub and VMs on 127.0.0.1)",
            4.0,
        ),
        (
            "sandbox",
            "run the sandbox GitHub and VMs in the foreground and print a config for them",
            1.0,
        ),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--speed", type=float, default=speed, help=f"simulated clock speed (default {speed:g}x)"
        )
        sub.add_argument(
            "--seed", type=int, default=7, help="seed of the simulated world (default 7)"
        )
        sub.add_argument(
            "--data-dir",
            metavar="DIR",
            help="where its config, keys, history and logs live (default: a demo folder)",
        )
        if name == "demo":
            sub.add_argument(
                "--readonly",
                action="store_true",
                help="hide and refuse rollback, cancel and deploy",
            )
    _add_script_commands(commands)
    _add_init(commands)
    config = commands.add_parser(
        "config", help="print the example config, or write it where vmkit-tui looks for one"
    )
    config.add_argument(
        "action",
        choices=("example", "init"),
        help="example: print it; init: write it to the config path (0600, never overwriting)",
    )
    return parser


def _add_init(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser(
        "init", help="write a config from your repos' deploy workflows and Kamal configs"
    )
    init.add_argument("repos", nargs="*", metavar="OWNER/REPO", help="default: all of yours")
    init.add_argument("--path", metavar="DIR", help="read the Kamal config from this checkout")
    init.add_argument("--api-url", metavar="URL", help="default: the config's, else GitHub's")
    init.add_argument("--known-hosts", metavar="PATH", help="known_hosts file for its hosts")
    init.add_argument("--yes", action="store_true", help="write without asking")


def _add_script_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mcp` and the commands for scripts (README "MCP server" and "Command line")."""
    mcp = commands.add_parser(
        "mcp", help="serve the deploy tools to an AI assistant over MCP (stdio)"
    )
    mcp.add_argument(
        "--readonly",
        action="store_true",
        default=argparse.SUPPRESS,  # `vmkit-tui --readonly mcp` works too
        help="offer only the read tools (no rollback, cancel or deploy)",
    )
    deploys = commands.add_parser("deploys", help="an environment's deploys, newest first")
    _add_environment(deploys)
    deploys.add_argument("--json", action="store_true", help="a JSON list (README: stable shape)")
    deploys.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N deploys (default 20)"
    )
    deploys.add_argument(
        "--no-sync",
        action="store_true",
        help="print the history as recorded, without asking GitHub first",
    )
    rollback = commands.add_parser(
        "rollback", help="roll an environment back to an earlier deploy's image"
    )
    _add_environment(rollback)
    rollback.add_argument(
        "--to",
        metavar="SHA|DEPLOY_ID",
        help="the target: a deploy id, or a commit SHA (a unique prefix of 7+ hex is enough); "
        "default: the last succeeded deploy older than the live SHA's first deploy",
    )
    _add_action_flags(rollback, "roll back")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="send despite a teammate's unfinished deploy on the environment (team history) or "
        "an image GHCR no longer lists; the deploy records what it overrode",
    )
    cancel = commands.add_parser("cancel", help="cancel a running deploy")
    _add_environment(cancel)
    cancel.add_argument("deploy_id", metavar="DEPLOY_ID")
    _add_action_flags(cancel, "cancel")
    cancel.add_argument(
        "--force", action="store_true", help="force-cancel (also skips the run's cleanup steps)"
    )
    logs = commands.add_parser("logs", help="print a deploy's logs")
    logs.add_argument("deploy_id", metavar="DEPLOY_ID")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the deploy has finished"
    )
    logs.add_argument(
        "--source",
        metavar="S",
        help="only lines from S: github, kamal, kamal-proxy, vmkit-agent or app",
    )
    calls = commands.add_parser(
        "log-calls", help="print the GitHub requests and SSH commands of the newest session"
    )
    calls.add_argument(
        "-f", "--follow", action="store_true", help="keep printing the newest session's calls"
    )
    calls.add_argument(
        "--sessions", type=_positive, default=1, metavar="N", help="the N newest sessions"
    )
    calls.add_argument(
        "--data-dir", metavar="DIR", help="the data dir (default: from the config, then the user's)"
    )


def _add_environment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", metavar="REPO", help="owner/name, as configured")
    parser.add_argument("environment", metavar="ENV", help="an environment of REPO")


def _add_action_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"{what} without asking (needed without a terminal)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the deploy to its end; exit 1 unless it ends as wanted",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the deploy's JSON (README: stable shape)"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_heap_small()  # before any thread: the dashboard and the MCP server run for hours
    try:
        if args.command == "history":
            return _history(args)
        if args.command == "config":
            from vmkit_tui.frontends.cli.config_file import run_config

            return run_config(args.action, resolve_config_path(args.config))
        if args.command == "init":
            from vmkit_tui.frontends.cli.init import run_init

            return run_init(args, resolve_config_path(args.config))
        if args.command in ("demo", "sandbox"):
            from vmkit_tui.sandbox.commands import run_sandbox_command

            return run_sandbox_command(args)
        if args.command == "mcp":
            from vmkit_tui.frontends.mcp.server import serve

            config = _load(args)
            return serve(config, _history_path(args, config), readonly=args.readonly)
        if args.command == "log-calls":
            return _log_calls(args)
        if args.command in ("deploys", "rollback", "cancel", "logs"):
            from vmkit_tui.frontends.cli.commands import run

            config = _load(args)
            return run(args, config, _history_path(args, config))
        return _tui(args)
    except BrokenPipeError:  # `vmkit-tui history | head`: the reader left; that is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return EXIT_OK
    except Exception as exc:  # a bad config or history, a file that cannot be read or written
        from vmkit_tui.failure import HANDLED, one_line  # lazily: it loads the history package

        if not isinstance(exc, HANDLED):
            raise
        status, line = one_line(exc)
        print(f"vmkit-tui: {line}", file=sys.stderr)
        return status


def _load(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config))


def _history_path(args: argparse.Namespace, config: Config | None) -> Path:
    from vmkit_tui.store.history import default_history_path

    if args.history:
        return Path(args.history).expanduser()
    if config is not None and config.history_path is not None:
        return config.history_path
    return default_history_path()


def _tui(args: argparse.Namespace) -> int:
    """The dashboard. With no config file yet it still opens, on a screen that says what to do."""
    from vmkit_tui.service import DeployService
    from vmkit_tui.store.history import AsyncHistory, History

    config = _load_optional(args) or Config(source=None)
    history = History(_history_path(args, config))
    service = DeployService(config, AsyncHistory(history), config.data_dir or default_data_dir())
    from vmkit_tui.frontends.tui.app import VmkitApp, run_app

    app = VmkitApp(
        service, readonly=args.readonly, keymap=dict(config.ui.keys), bell=config.ui.bell
    )
    if config.ui.theme:
        app.theme = config.ui.theme
    return run_app(app)


def _log_calls(args: argparse.Namespace) -> int:
    from vmkit_tui.frontends.cli.calls import log_calls

    if args.data_dir:
        data_dir = Path(args.data_dir).expanduser()
    else:
        config = _load_optional(args)
        data_dir = (config.data_dir if config else None) or default_data_dir()
    try:
        return log_calls(data_dir / "calls", sessions=args.sessions, follow=args.follow)
    except KeyboardInterrupt:  # the way out of --follow
        return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from vmkit_tui.domain.text import escaped
    from vmkit_tui.frontends.present import history_table
    from vmkit_tui.store.history import History, HistoryCorrupt, move_aside

    config = _load_optional(args)
    path = _history_path(args, config)
    if args.move_aside:
        if not path.exists():
            print(
                f"vmkit-tui: {escaped(str(path))}: no history file to move aside", file=sys.stderr
            )
            return EXIT_USAGE
        try:
            History(path).records()
        except HistoryCorrupt:
            moved = move_aside(path)  # refuses a directory
            print(f"moved {escaped(str(path))} to {escaped(str(moved))}; a fresh history starts")
            return EXIT_OK
        print(
            f"vmkit-tui: {escaped(str(path))} is readable; refusing to move a healthy history aside",
            file=sys.stderr,
        )
        return EXIT_USAGE
    records = History(path).records()  # a damaged or unreadable file: one line from main()
    if args.json:
        from vmkit_tui.frontends.cli.commands import history_json

        json.dump(history_json(config, path, records), sys.stdout, indent=2)
        print()
        return EXIT_OK
    for line in history_table(records):
        print(line)
    return EXIT_OK


def _load_optional(args: argparse.Namespace) -> Config | None:
    """`history` works without a config (it only needs the file); a *broken* config still fails."""
    path = resolve_config_path(args.config)
    try:
        missing = not path.exists()
    except OSError as exc:  # e.g. $VMKIT_CONFIG in a folder the user cannot search
        raise ConfigError(str(path), f"cannot look at it: {exc.strerror or exc}") from None
    if not args.config and missing:
        return None
    return load_config(path)


if __name__ == "__main__":
    sys.exit(main())
