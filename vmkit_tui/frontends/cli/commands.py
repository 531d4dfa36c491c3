"""`vmkit-tui deploys|rollback|cancel|logs`: the deploy service for scripts and terminals.

Exit status: 0 done; 1 the action failed (refused by its preflight, aborted at the prompt, the
deploy ended other than wanted under `--wait`, `deploys` could not sync with GitHub); 2 bad usage or config (unknown repo or
environment, a malformed SHA or deploy id, a destructive command with no terminal to confirm on
and no `--yes`). A destructive command prints the same preflight as the TUI's dialog first.

Names and ids are checked by `frontends.shared` (as in the MCP server); following a deploy to
its end is `cli.waiting`. Everything remote that is printed goes through `present.clean`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vmkit_tui.actions.actor import local_actor
from vmkit_tui.config import Config, default_data_dir
from vmkit_tui.domain.models import DEPLOY_ID_PATTERN, DeployRecord, Status, Trigger
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.domain.updates import Health, SourceHealth
from vmkit_tui.failure import HANDLED, one_line
from vmkit_tui.frontends.cli.output import Failed, say
from vmkit_tui.frontends.cli.waiting import next_update, tracking, wait_final
from vmkit_tui.frontends.present import (
    cancel_lines,
    clean,
    deploy_table,
    log_line,
    preflight_lines,
    record_json,
    status_line,
)
from vmkit_tui.frontends.shared import (
    LOG_BLOCK,
    UsageError,
    check_environment,
    check_source,
    check_target,
    find_deploy,
)
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import (
    AsyncHistory,
    History,
    UnknownDeploy,
)
from vmkit_tui.store.spool import SpoolReader, spool_path

if TYPE_CHECKING:
    from vmkit_tui.actions.preflight import Preflight

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SYNC_TIMEOUT = 60.0  # seconds `deploys` waits for its environment's first tracking round
QUIET_AFTER_FINAL = 2.0  # `logs --follow` ends this long after the last line of a finished deploy
FOLLOW_AFTER_FINAL = 10.0  # … or this long after it finished, whatever still comes in
FOLLOW_POLL = 0.5  # seconds between looks at a followed spool


# ---------------------------------------------------------------------------- entry


def run(args: argparse.Namespace, config: Config, history_path: Path) -> int:
    """Run one of the commands; the exit status."""
    service = DeployService(
        config, AsyncHistory(History(history_path)), config.data_dir or default_data_dir()
    )
    commands: dict[str, Callable[[DeployService, argparse.Namespace], Coroutine[Any, Any, int]]]
    commands = {"deploys": _deploys, "rollback": _rollback, "cancel": _cancel, "logs": _logs}
    try:
        return asyncio.run(_stopping(service, commands[args.command](service, args)))
    except UsageError as error:
        say(error)
        return EXIT_USAGE
    except Failed as error:
        say(error)
        return EXIT_FAILED
    except BrokenPipeError:  # `… | head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except HANDLED as error:  # the history or a file: one line, the launcher's statuses
        status, line = one_line(error)
        say(line)
        return status
    except KeyboardInterrupt:
        say("interrupted: stopped waiting (a deploy already sent goes on; see `vmkit-tui deploys`)")
        return EXIT_FAILED


def history_json(
    config: Config | None, history_path: Path, records: Sequence[DeployRecord]
) -> list[dict[str, Any]]:
    """`history --json`: every record, with its rollback eligibility checked now for the
    configured environments (without a config nothing can be checked: unknown)."""
    if config is None:
        return [record_json(record) for record in records]
    service = DeployService(
        config, AsyncHistory(History(history_path)), config.data_dir or default_data_dir()
    )

    async def check() -> int:
        await service.check_eligibility(records)
        return EXIT_OK

    asyncio.run(_stopping(service, check()))
    return [record_json(record, service.rollback_eligibility(record)) for record in records]


async def _stopping(service: DeployService, command: Coroutine[Any, Any, int]) -> int:
    try:
        return await command
    finally:
        await service.stop()


def _out(args: argparse.Namespace) -> TextIO:
    """Where the human lines go: stdout, or stderr when stdout carries `--json`."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


async def _confirm(args: argparse.Namespace, question: str) -> None:
    """Go on with `--yes`; else ask on the terminal; with no terminal refuse (exit 2)."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"no terminal to confirm on: nothing was done. Add --yes to {args.command} "
            "without asking."
        )
    try:
        answer = await asyncio.to_thread(input, f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise Failed("aborted: nothing was done")


def _refuse_readonly(args: argparse.Namespace) -> None:
    if args.readonly:
        raise UsageError(f"--readonly: {args.command} is not allowed")


# ---------------------------------------------------------------------------- deploys


async def _deploys(service: DeployService, args: argparse.Namespace) -> int:
    """Exit 1 when the sync with GitHub failed: the history printed may be stale, and a script
    must be able to tell (each `--json` row says so too: `synced`, `sync_error`)."""
    repo, environment = args.repo, args.environment
    check_environment(service.config, repo, environment)
    error: str | None = None
    if not args.no_sync:
        await _require_github(service)
        health = await _sync(service, repo, environment)
        if health is None:
            error = "GitHub did not answer in time"
        elif health.health is not Health.OK:
            error = clean(health.message)
        if error is not None:
            say(f"{error} (showing the history as last recorded)")
        if service.local_only is not None:
            say(service.local_only)
    records = newest_first(await service.history.records(repo, environment))[: args.limit]
    status = EXIT_OK if error is None else EXIT_FAILED
    if args.json:
        synced = {"synced": not args.no_sync and error is None, "sync_error": error}
        await service.check_eligibility(records)
        rows = [record_json(r, service.rollback_eligibility(r)) | synced for r in records]
        json.dump(rows, sys.stdout, indent=2)
        print()
        return status
    print(f"{repo} / {environment} ({len(records)} deploys, newest first)")
    for line in deploy_table(records):
        print("  " + line)
    return status


async def _require_github(service: DeployService) -> None:
    """No token, or an API URL the client refuses, is a configuration error (exit 2), not a
    sync that failed."""
    from vmkit_tui.domain.models import ValidationError
    from vmkit_tui.domain.secret import NoToken, host_of

    try:
        github = await service.github_client()
    except ValidationError as error:
        raise UsageError(f"github.api_url: {error}") from None
    if github is None:
        raise UsageError(f"{NoToken(host_of(service.config.github.api_url))} (or use --no-sync)")


async def _sync(service: DeployService, repo: str, environment: str) -> SourceHealth | None:
    """One tracking round, so what is printed is what GitHub says now: the environment's first
    GitHub health report (OK after a round, or why it failed); None if none came in time."""
    async with tracking(service, repo, environment) as queue:
        health = await next_update(
            queue,
            lambda u: (
                isinstance(u, SourceHealth)
                and u.key == "github"
                and (u.repo, u.environment) == (repo, environment)
            ),
            SYNC_TIMEOUT,
        )
    return health if isinstance(health, SourceHealth) else None


# ---------------------------------------------------------------------------- rollback


async def _rollback(service: DeployService, args: argparse.Namespace) -> int:
    repo, environment = args.repo, args.environment
    check_environment(service.config, repo, environment)
    target = check_target(args.to)
    if target is not None and DEPLOY_ID_PATTERN.fullmatch(target):
        with contextlib.suppress(UnknownDeploy):  # not an id: a SHA prefix (resolve_target)
            found = await service.record(target)
            if (found.deploy.repo, found.deploy.environment) != (repo, environment):
                raise UsageError(
                    f"Deploy {target} is on {found.deploy.repo} {found.deploy.environment}, "
                    f"not {repo} {environment}."
                )
    _refuse_readonly(args)
    out = _out(args)
    preflight = await _preflight(service, repo, environment, target)
    print(f"Roll back {repo} {environment} to {preflight.target.short_sha}:", file=out)
    for line in preflight_lines(preflight):
        print(f"  {line}", file=out)
    refusal = preflight.refusal(args.force)
    if refusal is not None:
        raise Failed(f"refused: {clean(refusal)}")
    await _confirm(args, f"Roll back {environment} to {preflight.target.short_sha}?")
    if not args.wait:
        record = await _send_rollback(service, args, preflight)
        return _sent(args, record, f"vmkit-tui logs {record.id} --follow")
    async with tracking(service, repo, environment) as queue:
        record = await _send_rollback(service, args, preflight)
        if record.status is Status.FAILED:
            return _sent(args, record, "")
        print(status_line(record), file=out)
        final = await wait_final(
            service, queue, record.id, lambda changed: print(status_line(changed), file=out)
        )
    return _finished(args, final, Status.SUCCEEDED)


async def _preflight(
    service: DeployService, repo: str, environment: str, target: str | None
) -> Preflight:
    from vmkit_tui.actions.errors import ActionRefused, UnknownTarget

    try:
        return await (await service.actions()).preflight(repo, environment, target)
    except UnknownTarget as error:
        raise UsageError(clean(error)) from None
    except ActionRefused as error:
        raise Failed(clean(error)) from None


async def _send_rollback(
    service: DeployService, args: argparse.Namespace, preflight: Preflight
) -> DeployRecord:
    from vmkit_tui.actions.errors import ActionError

    try:
        record = await (await service.actions()).rollback(
            args.repo,
            args.environment,
            args.to,
            trigger=Trigger.MANUAL,
            actor=local_actor(),
            preflight=preflight,
            force=args.force,
        )
    except ActionError as error:
        raise Failed(f"not rolled back: {clean(error)}") from None
    if service.local_only is not None:  # found out by this write: said once, not retried
        say(service.local_only)
    return record


def _sent(args: argparse.Namespace, record: DeployRecord, follow: str) -> int:
    """A deploy was just recorded and sent (not waited for)."""
    out = _out(args)
    for event in record.events[:1]:  # CREATED: what `--force` went past
        for overridden in event.data.get("forced", ()):
            print(f"Overrode: {clean(str(overridden))}", file=out)
    if record.status is Status.FAILED:
        detail = record.events[-1].detail if record.events else ""
        print(f"Deploy {record.id} failed at once: {clean(detail)}", file=out)
    else:
        print(f"Deploy {record.id} is {record.status.value}. Follow it: {follow}", file=out)
    _json(args, record)
    return EXIT_FAILED if record.status is Status.FAILED else EXIT_OK


def _finished(args: argparse.Namespace, record: DeployRecord, wanted: Status) -> int:
    """A waited-for deploy reached its final status: 0 when it is the one wanted."""
    out = _out(args)
    diagnosis = record.diagnosis
    if diagnosis is not None:
        print(f"  cause: {clean(diagnosis.cause)}", file=out)
        print(f"  fix:   {clean(diagnosis.fix)}", file=out)
    _json(args, record)
    if record.status is wanted:
        return EXIT_OK
    say(f"deploy {record.id} ended {record.status.value}")
    return EXIT_FAILED


def _json(args: argparse.Namespace, record: DeployRecord) -> None:
    if args.json:
        json.dump(record_json(record), sys.stdout, indent=2)
        print()


# ---------------------------------------------------------------------------- cancel


async def _cancel(service: DeployService, args: argparse.Namespace) -> int:
    from vmkit_tui.actions.errors import ActionError
    from vmkit_tui.sources.github import CancelOutcome

    repo, environment = args.repo, args.environment
    check_environment(service.config, repo, environment)
    deploy_id = (await find_deploy(service, args.deploy_id, (repo, environment))).id
    _refuse_readonly(args)
    out = _out(args)
    try:
        check = await (await service.actions()).cancel_preflight(deploy_id)
    except ActionError as error:
        raise Failed(clean(error)) from None
    print(f"Cancel deploy {deploy_id} on {repo} {environment}:", file=out)
    for line in cancel_lines(check):
        print(f"  {line}", file=out)
    if check.refusal is not None:
        raise Failed(f"refused: {clean(check.refusal)}")
    await _confirm(args, f"{'Force-cancel' if args.force else 'Cancel'} deploy {deploy_id}?")
    async with contextlib.AsyncExitStack() as stack:
        watching = tracking(service, repo, environment)
        queue = await stack.enter_async_context(watching) if args.wait else None
        try:
            result = await (await service.actions()).cancel(
                deploy_id, trigger=Trigger.MANUAL, actor=local_actor(), force=args.force
            )
        except ActionError as error:
            raise Failed(f"not cancelled: {clean(error)}") from None
        for line in (result.message, *result.warnings, result.lock.message if result.lock else ""):
            if line:
                print(clean(line), file=out)
        if result.outcome is not CancelOutcome.REQUESTED:  # not taken, or finished first
            _json(args, result.record)
            return EXIT_FAILED
        if queue is None:
            return _sent(args, result.record, f"vmkit-tui deploys {repo} {environment}")
        print(status_line(result.record), file=out)
        final = await wait_final(
            service, queue, deploy_id, lambda changed: print(status_line(changed), file=out)
        )
    return _finished(args, final, Status.CANCELLED)


# ---------------------------------------------------------------------------- logs


async def _logs(service: DeployService, args: argparse.Namespace) -> int:
    check_source(args.source)
    record = await find_deploy(service, args.deploy_id)
    if record.status.is_final:
        record = await _fetch_logs(service, record)
    reader = SpoolReader(spool_path(service.data_dir, record.id))
    try:
        position, shown = await asyncio.to_thread(_print_lines, reader, 0, args.source)
        if args.follow and not record.status.is_final:
            record, more = await _follow(service, reader, record.id, args.source, position)
            shown += more
        if shown == 0:
            say(_no_lines(record, args.source, len(reader)))
    finally:
        reader.close()
    if record.diagnosis is not None:
        cause, fix = record.diagnosis.cause, record.diagnosis.fix
        say(f"deploy {record.id} {record.status.value}: {clean(cause)}; fix: {clean(fix)}")
    elif args.follow:
        say(f"deploy {record.id} {record.status.value}")
    return EXIT_OK


async def _fetch_logs(service: DeployService, record: DeployRecord) -> DeployRecord:
    """The finished deploy, with its job logs and diagnosis fetched now if no vmkit-tui has
    (the past of a first start): the fetch the dashboard makes when a deploy is selected."""
    from vmkit_tui.sources.github import GitHubError

    try:
        return await service.fetch_logs(record.id)
    except GitHubError as error:
        say(f"cannot fetch the job logs of deploy {record.id} from GitHub: {error}")
        return record


def _no_lines(record: DeployRecord, source: str | None, total: int) -> str:
    if source and total:
        return f"none of the {total} log lines of deploy {record.id} is from {clean(source)!r}"
    return (
        f"no log lines recorded for deploy {record.id} ({record.status.value}); vmkit-tui "
        "records them while it tracks (the dashboard, `vmkit-tui mcp`, or logs --follow)"
    )


def _print_lines(reader: SpoolReader, start: int, source: str | None) -> tuple[int, int]:
    """Print the spool's lines from `start` on (of `source` only, if given): (the new position,
    lines printed). Blocking: reads the spool."""
    reader.refresh()
    position, printed = start, 0
    while position < len(reader):
        stop = min(position + LOG_BLOCK, len(reader))
        for line in reader.lines(position, stop):
            if source is None or line.source == source:
                print(log_line(line))
                printed += 1
        position = stop
    sys.stdout.flush()
    return position, printed


async def _follow(
    service: DeployService, reader: SpoolReader, deploy_id: str, source: str | None, position: int
) -> tuple[DeployRecord, int]:
    """Track the deploy to its end (`wait_final`) while printing what reaches its spool
    (written here or by another vmkit-tui); then the last lines, until the log has been quiet
    for QUIET_AFTER_FINAL s (or FOLLOW_AFTER_FINAL s have passed: idle VMs keep logging).
    Returns the final record and the lines printed."""
    loop = asyncio.get_running_loop()
    printed = 0

    async def show() -> bool:
        nonlocal position, printed
        moved, count = await asyncio.to_thread(_print_lines, reader, position, source)
        position, printed = moved, printed + count
        return count > 0

    deploy = (await service.record(deploy_id)).deploy
    async with tracking(service, deploy.repo, deploy.environment) as queue:
        waiter = asyncio.create_task(wait_final(service, queue, deploy_id, lambda _r: None))
        try:
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=FOLLOW_POLL)
                await show()
            record = waiter.result()
            ended = last_line = loop.time()
            while loop.time() - last_line < QUIET_AFTER_FINAL:
                if loop.time() - ended >= FOLLOW_AFTER_FINAL:
                    break
                await asyncio.sleep(FOLLOW_POLL)
                if await show():
                    last_line = loop.time()
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
    return record, printed
