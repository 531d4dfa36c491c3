"""`vmkit-tui mcp`: the deploy service as MCP tools for an AI assistant, over stdio.

Same config, history and service as the TUI: what the assistant does is recorded like anything
else (`triggered_by: mcp`, the client's name as the actor), and the TUI and CLI see it. While the
server runs it tracks every configured environment, so a rollback's status moves on and
`deploy_status` polling sees it; tracking stops when the client goes away.

Read tools are annotated read-only and idempotent; write tools destructive and not idempotent,
and their descriptions say what they need and what they do not undo (the database schema, the
current secrets), so an assistant can warn its user before acting. `--readonly` leaves the write
tools out. Failures are tool errors (isError) of one line, never tracebacks; everything returned
is sanitised and redacted (`present.clean`). Importing the `mcp` SDK costs ~0.7 s: only this
command does it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations
from mcp.types import Tool as MCPTool
from pydantic import Field
from pydantic import ValidationError as ArgumentsError

from vmkit_tui import __version__
from vmkit_tui.actions.errors import ActionError
from vmkit_tui.actions.preflight import Preflight
from vmkit_tui.config import Config, default_data_dir
from vmkit_tui.domain.models import DeployRecord, Status, Trigger, ValidationError, is_sha_prefix
from vmkit_tui.domain.overview import newest_first
from vmkit_tui.frontends.present import (
    cancel_json,
    clean,
    event_json,
    log_json,
    preflight_json,
    record_json,
)
from vmkit_tui.frontends.shared import (
    UsageError,
    check_environment,
    check_target,
    find_deploy,
    log_window,
)
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History, HistoryError
from vmkit_tui.store.spool import spool_path

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False)
MAX_LINES = 500  # log lines per call
MAX_LINE_CHARS = 2000  # characters of one log line in an answer
POLL_SECONDS = 5  # what deploy_status suggests between polls

# Failures a tool call may meet that are the caller's or the world's, not a bug: their message
# (one sentence, no secrets) is the tool error.
EXPECTED = (ActionError, UsageError, HistoryError, ValidationError, OSError)

INSTRUCTIONS = """\
vmkit-tui: deploy history, logs, rollback and cancel for apps deployed by GitHub Actions + Kamal.
Start with list_environments. Before a rollback, call preview_rollback and confirm the target
SHA and the warnings (migrations, secrets) with the user. After rollback, cancel_deploy or
deploy_sha, poll deploy_status with the returned deploy_id until `final` is true."""

Repo = Annotated[str, Field(description="Repository as configured, owner/name (acme/storefront)")]
Environment = Annotated[str, Field(description="Environment name as configured (production)")]
DeployId = Annotated[str, Field(description="A deploy id: 12 hex characters (from list_deploys)")]
Target = Annotated[
    str | None,
    Field(
        description="A deploy id, or a commit SHA (full, or a unique prefix of 7+ hex among the "
        "environment's deploys) to go to; omit it (or give the live deploy's id) for the last "
        "succeeded deploy older than the live SHA's first deploy"
    ),
]


class VmkitMcpServer(MCPServer[None]):
    """MCPServer whose tool errors are one line: argument errors name the fields, expected
    failures say their message, anything else stays the SDK's generic error (the traceback
    goes to the server's stderr only). An argument a tool does not take is refused (the SDK
    would drop it silently: a misspelt `limit` or filter would quietly answer something else),
    and each tool's schema says so (`additionalProperties: false`)."""

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        for tool in tools:
            tool.input_schema = {**tool.input_schema, "additionalProperties": False}
        return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[None, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        await self._refuse_unknown_arguments(name, arguments)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            cause = error.__cause__
            if isinstance(cause, ArgumentsError):
                fields = "; ".join(
                    f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
                    for e in cause.errors()
                )
                raise ToolError(
                    clean(f"Error executing tool {name}: invalid arguments: {fields}")
                ) from None
            if isinstance(error, UnexpectedToolError) and not isinstance(cause, EXPECTED):
                raise
            message = clean(cause if isinstance(cause, EXPECTED) else error)
            if not message.startswith("Error executing tool"):
                message = f"Error executing tool {name}: {message}"
            raise ToolError(" ".join(message.split())) from None

    async def _refuse_unknown_arguments(self, name: str, arguments: dict[str, Any]) -> None:
        tool = next((tool for tool in await super().list_tools() if tool.name == name), None)
        if tool is None:  # an unknown tool: the SDK says so
            return
        known = list(tool.input_schema.get("properties", {}))
        unknown = [repr(argument[:60]) for argument in arguments if argument not in known]
        if unknown:
            raise ToolError(
                clean(
                    f"Error executing tool {name}: invalid arguments: unknown "
                    f"{'argument' if len(unknown) == 1 else 'arguments'} {', '.join(unknown)} "
                    f"(it takes: {', '.join(known) or 'no arguments'})"
                )
            )


class DeployTools:
    """The tools, over one DeployService."""

    def __init__(self, service: DeployService) -> None:
        self.service = service

    # ---------------------------------------------------------------- read

    async def list_environments(self) -> dict[str, Any]:
        """Every configured repo and environment: the live deploy (SHA serving traffic now),
        the last deploy and its status, deploys in progress, the rollback strategy, and how
        tracking GitHub and the VMs is going. Reads vmkit-tui's deploy history; sends nothing."""
        service = self.service
        overview = await service.overview()
        health: dict[tuple[str, str], list[dict[str, str]]] = {}
        for source in service.health():
            health.setdefault((source.repo, source.environment), []).append(
                {
                    "source": clean(source.key),
                    "health": source.health.value,
                    "message": clean(source.message),
                }
            )
        found = []
        for repo in service.config.repos:
            for env in repo.environments:
                summary = overview.summary(repo.name, env.name)
                live, last = summary.live, summary.last
                found.append(
                    {
                        "repo": repo.name,
                        "environment": env.name,
                        "strategy": env.rollback.value,
                        "live": _brief(live) if live else None,
                        "last": _brief(last) if last else None,
                        "active_deploys": summary.active,
                        "success_rate": summary.success_rate,
                        "tracking": health.get((repo.name, env.name), []),
                    }
                )
        return {"environments": found}

    async def list_deploys(
        self,
        repo: Repo,
        environment: Environment,
        status: Literal["pending", "running", "cancelling", "succeeded", "failed", "cancelled"]
        | None = None,
        trigger: Literal["push", "manual", "mcp"] | None = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 20,
    ) -> dict[str, Any]:
        """An environment's deploys, newest first (the last 50 are kept), optionally only those
        with a status or trigger (push: automatic; manual: TUI/CLI; mcp: an assistant). Each has
        its id, full SHA, status, trigger, actor, GitHub Actions run link, duration to the first
        healthy response, the diagnosis of a failure, and its rollback_eligibility (retained:
        its container is still on every host; in_registry: only its image is in GHCR; gone:
        neither, a rollback needs a rebuild; unknown: cannot tell, the reason says why). Reads
        the history, the hosts' container lists and GHCR's tags; changes nothing."""
        check_environment(self.service.config, repo, environment)
        records = newest_first(await self.service.history.records(repo, environment))
        chosen = [
            record
            for record in records
            if (status is None or record.status.value == status)
            and (trigger is None or record.deploy.triggered_by.value == trigger)
        ][:limit]
        await self.service.check_eligibility(chosen)
        eligibility = self.service.rollback_eligibility
        return {
            "repo": repo,
            "environment": environment,
            "count": len(chosen),
            "deploys": [record_json(record, eligibility(record)) for record in chosen],
        }

    async def get_deploy(self, deploy_id: DeployId) -> dict[str, Any]:
        """One deploy in full: its record, the diagnosis of a failure (cause, fix, the log
        line), its audit trail (every recorded event: when, what, who) and how many log lines
        it has, and its rollback_eligibility as in list_deploys. Reads the history, the hosts'
        container lists and GHCR's tags; changes nothing."""
        record = await self._record(deploy_id)
        path = spool_path(self.service.data_dir, record.id)
        count_only = await asyncio.to_thread(  # no lines, just the spool's length
            log_window, path, last=0, start=None, count=0, source=None
        )
        await self.service.check_eligibility([record])
        return {
            **record_json(record, self.service.rollback_eligibility(record)),
            "audit_trail": [event_json(event, record) for event in record.events],
            "log_lines": count_only.total,
        }

    async def get_deploy_logs(
        self,
        deploy_id: DeployId,
        last: Annotated[int, Field(ge=1, le=MAX_LINES)] = 100,
        start: Annotated[
            int | None,
            Field(ge=0, description="First line (0-based) of a window; omit for the last lines"),
        ] = None,
        count: Annotated[int, Field(ge=1, le=MAX_LINES)] = 100,
        source: Annotated[
            Literal["github", "kamal", "kamal-proxy", "vmkit-agent", "app"] | None,
            Field(description="Only this source's lines"),
        ] = None,
    ) -> dict[str, Any]:
        """A deploy's logs as recorded: GitHub Actions (build, image push, Kamal), the VMs'
        kamal-proxy and vmkit-agent lines. The last `last` lines, or the window `start`..
        `start+count` (page with `next_start`); with `source`, only that source's lines. Each
        line has its index, time, source and host (or job). Reads local files; sends nothing."""
        record = await self._record(deploy_id)
        window = await asyncio.to_thread(
            log_window,
            spool_path(self.service.data_dir, record.id),
            last=last,
            start=start,
            count=count,
            source=source,
        )
        answer: dict[str, Any] = {
            "deploy_id": record.id,
            "status": record.status.value,
            "total_lines": window.total,
            "lines": [log_json(i, line, MAX_LINE_CHARS) for i, line in window.lines],
            "next_start": window.next_start,
        }
        if window.total == 0:
            answer["note"] = (
                "No log lines recorded yet: they arrive while vmkit-tui tracks the deploy."
            )
        return answer

    async def deploy_status(self, deploy_id: DeployId) -> dict[str, Any]:
        """A deploy's status in brief, for polling after rollback, cancel_deploy or deploy_sha:
        `final` is true once it succeeded, failed or was cancelled. Reads the history."""
        record = await self._record(deploy_id)
        diagnosis = record.diagnosis
        last = record.events[-1] if record.events else None
        final = record.status.is_final
        if not final:  # someone is watching: poll GitHub now, not at the idle interval
            self.service.track_now(record.deploy.repo, record.deploy.environment)
        return {
            "deploy_id": record.id,
            "status": record.status.value,
            "final": final,
            "sha": record.deploy.sha,
            "run_url": record_json(record)["run_url"],
            "duration_seconds": record.duration[0].total_seconds() if record.duration else None,
            "cancel_requested": record.cancel_requested,
            "diagnosis": (
                {"cause": clean(diagnosis.cause), "fix": clean(diagnosis.fix)}
                if diagnosis
                else None
            ),
            "last_event": event_json(last, record)["summary"] if last else None,
            "poll_again_in_seconds": None if final else POLL_SECONDS,
        }

    async def preview_rollback(
        self, repo: Repo, environment: Environment, target: Target = None
    ) -> dict[str, Any]:
        """What `rollback` with these arguments would do, without doing it: the resolved target
        (SHA, its deploy, commit message), the live version, whether the target's image is
        still in GHCR, migration files changed since the target (the database is never rolled
        back), warnings, and `refusal` (why rollback would be refused; null if it may go).
        Asks GitHub; changes nothing."""
        preflight = await self._preflight(repo, environment, target)
        return {"refusal": _refused(preflight.refusal()), **preflight_json(preflight)}

    # ---------------------------------------------------------------- write

    async def rollback(
        self,
        repo: Repo,
        environment: Environment,
        ctx: Context,
        target: Target = None,
        force: Annotated[
            bool,
            Field(
                description="Go past a teammate's unfinished deploy on the environment (team "
                "history); only when the user confirmed it is stale. The deploy records it."
            ),
        ] = False,
    ) -> dict[str, Any]:
        """DESTRUCTIVE: re-deploy an earlier version's image to an environment (no rebuild).

        Records a NEW deploy (triggered_by "mcp", rollback_of the target deploy) and dispatches
        the deploy workflow (or runs Kamal over SSH, per the environment's strategy); traffic
        moves to the target once its container is healthy. Target: a deploy id, or a commit SHA
        (full, or a unique prefix of 7+ hex in the history; a 12-hex value that is a deploy id
        names the deploy); default: the last succeeded deploy older than the live SHA's first
        deploy (never forward).
        Preconditions (else a tool error and nothing is done): the target's image must still be
        in GHCR; the target must not be live already; no other action may be in flight there.
        NOT undone by a rollback: the database schema (migrations since the target stay
        applied: the older code runs against the newer schema; see `preflight.migrations`);
        the CURRENT secrets and environment variables are used, not the ones the target ran
        with. Call preview_rollback first and confirm the target SHA with the user.
        Returns the new deploy_id (poll deploy_status until final), the resolved target_sha,
        the previously live SHA (roll back to it to undo), and the preflight facts."""
        preflight = await self._preflight(repo, environment, target)
        _refuse(preflight.refusal())
        record = await (await self.service.actions()).rollback(
            repo,
            environment,
            target,
            trigger=Trigger.MCP,
            actor=_client_name(ctx),
            preflight=preflight,
            force=force,
        )
        return _started(record, preflight)

    async def cancel_deploy(
        self,
        deploy_id: DeployId,
        ctx: Context,
        force: Annotated[
            bool,
            Field(description="Force-cancel: only when a cancel was requested and did not stop it"),
        ] = False,
    ) -> dict[str, Any]:
        """DESTRUCTIVE: ask GitHub Actions to cancel a running deploy's workflow run.

        Preconditions (else a tool error): the deploy is pending or running, was dispatched
        through GitHub (a Kamal-over-SSH deploy cannot be cancelled), and its run is known.
        Effects: the run stops at its current step. If Kamal has already started swapping the
        container, the swap completes on the VM and the deploy may still succeed or fail on
        its own: a cancel may NOT stop a container swap already under way (see `warnings`).
        A cancelled Kamal may leave its deploy lock held (`lock` says). The final status comes
        later: poll deploy_status. force=true also skips the run's cleanup steps."""
        record = await self._record(deploy_id)
        check = await (await self.service.actions()).cancel_preflight(record.id)
        _refuse(check.refusal)
        result = await (await self.service.actions()).cancel(
            record.id, trigger=Trigger.MCP, actor=_client_name(ctx), force=force
        )
        if result.outcome is None:
            raise ToolError(result.message)
        return {**cancel_json(result), "kamal_started": check.kamal_started}

    async def deploy_sha(
        self,
        repo: Repo,
        environment: Environment,
        sha: Annotated[
            str,
            Field(
                description="The commit SHA whose image to deploy: full 40 hex, or a unique "
                "prefix of 7+ hex of a commit in the environment's history"
            ),
        ],
        ctx: Context,
    ) -> dict[str, Any]:
        """DESTRUCTIVE: deploy any commit's image to an environment, e.g. one older than the
        kept history (no rebuild). Records a NEW deploy (triggered_by "mcp").
        Preconditions (else a tool error and nothing is done): the commit exists on GitHub, its
        image is in GHCR, it is not live already, no other action is in flight there.
        NOT undone: the database schema (see `preflight.migrations`); the CURRENT secrets and
        environment variables are used. Returns the new deploy_id (poll deploy_status), the
        target_sha, the previously live SHA and the preflight facts."""
        if not is_sha_prefix(sha):
            raise UsageError(f"Not a commit SHA (7 to 40 lowercase hex characters): {sha[:60]!r}")
        preflight = await self._preflight(repo, environment, sha)
        _refuse(replace(preflight, require_commit=True).refusal())
        record = await (await self.service.actions()).deploy_sha(
            repo, environment, sha, trigger=Trigger.MCP, actor=_client_name(ctx)
        )
        return _started(record, preflight)

    # ---------------------------------------------------------------- helpers

    async def _record(self, deploy_id: str) -> DeployRecord:
        return await find_deploy(self.service, deploy_id)

    async def _preflight(self, repo: str, environment: str, target: str | None) -> Preflight:
        check_environment(self.service.config, repo, environment)
        return await (await self.service.actions()).preflight(
            repo, environment, check_target(target)
        )


def _brief(record: DeployRecord) -> dict[str, Any]:
    return {
        "deploy_id": record.id,
        "sha": record.deploy.sha,
        "status": record.status.value,
        "created_at": record_json(record)["created_at"],
    }


def _refused(refusal: str | None) -> str | None:
    return clean(refusal) if refusal else None


def _refuse(refusal: str | None) -> None:
    if refusal:
        raise ToolError(f"Refused, nothing was done: {clean(refusal)}")


def _started(record: DeployRecord, preflight: Preflight) -> dict[str, Any]:
    """The answer to a rollback or deploy: the new deploy and what was checked first."""
    if record.status is Status.FAILED:
        detail = record.events[-1].detail if record.events else "see get_deploy"
        raise ToolError(f"Deploy {record.id} was recorded but failed at once: {clean(detail)}")
    return {
        "deploy_id": record.id,
        "status": record.status.value,
        "target_sha": preflight.target.sha,
        "target_deploy_id": preflight.target.deploy.id if preflight.target.deploy else None,
        "previous_live_sha": preflight.live_sha,
        "preflight": preflight_json(preflight),
        "deploy": record_json(record),
        "next": "Poll deploy_status with deploy_id until final is true. To undo, roll back to "
        "previous_live_sha.",
    }


def _client_name(ctx: Context) -> str:
    """Who is acting, for the audit trail: the MCP client's own name, else "mcp"."""
    params = ctx.session.client_params
    name = clean(params.client_info.name).strip() if params and params.client_info else ""
    return name or "mcp"


def build_server(service: DeployService, *, readonly: bool = False) -> VmkitMcpServer:
    """The MCP server over `service`: tracking runs while a client is connected."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[None]) -> AsyncIterator[None]:
        await service.start()
        try:
            yield None
        finally:
            await service.stop()

    server = VmkitMcpServer(
        "vmkit-tui",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        lifespan=lifespan,
    )
    tools = DeployTools(service)
    reads: tuple[Callable[..., Any], ...] = (
        tools.list_environments,
        tools.list_deploys,
        tools.get_deploy,
        tools.get_deploy_logs,
        tools.deploy_status,
        tools.preview_rollback,
    )
    writes: tuple[Callable[..., Any], ...] = (tools.rollback, tools.cancel_deploy, tools.deploy_sha)
    for tool in reads:
        server.add_tool(tool, annotations=READ)
    if not readonly:
        for tool in writes:
            server.add_tool(tool, annotations=WRITE)
    return server


def serve(config: Config, history_path: Path, *, readonly: bool = False) -> int:
    """Serve over stdio until the client closes it (or Ctrl-C); tracking stops cleanly."""
    service = DeployService(
        config, AsyncHistory(History(history_path)), config.data_dir or default_data_dir()
    )
    server = build_server(service, readonly=readonly)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.run_stdio_async())
    return 0
