"""`vmkit-tui mcp` over stdio, driven by the MCP SDK's own client, against the sandbox.

Each test spawns `python -m vmkit_tui --config <sandbox config> mcp` as a subprocess, like an
MCP client application does, and talks JSON-RPC to it over its stdin/stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import Implementation

from tests.integration.cli_sandbox import REPO, ROOT, Sandbox, child_env, sandbox
from vmkit_tui.actions.preflight import default_rollback_target
from vmkit_tui.domain.models import (
    Deploy,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
)
from vmkit_tui.store.history import History
from vmkit_tui.store.spool import LogRecord, SpoolWriter

pytest_plugins = ["tests.integration.cli_fixtures"]

CLIENT = "pytest-assistant"
READ_TOOLS = {
    "list_environments",
    "list_deploys",
    "get_deploy",
    "get_deploy_logs",
    "deploy_status",
    "preview_rollback",
}
WRITE_TOOLS = {"rollback", "cancel_deploy", "deploy_sha"}
WAIT_S = 60.0  # real seconds a deploy may take to reach its final status


class Session:
    """A connected client, with calls that return the structured answer or the error text."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert isinstance(result.structured_content, dict)
        text = result.content[0]
        assert json.loads(getattr(text, "text", "")) == result.structured_content
        return result.structured_content

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error, result.structured_content
        (content,) = result.content
        message = getattr(content, "text", "")
        assert "\n" not in message and "Traceback" not in message
        return message

    async def until_final(self, deploy_id: str) -> dict[str, Any]:
        """Poll deploy_status as an assistant would, until the deploy is final."""
        with anyio.fail_after(WAIT_S):
            while True:
                status = await self.ok("deploy_status", deploy_id=deploy_id)
                if status["final"]:
                    return status
                assert status["poll_again_in_seconds"] == 5
                await anyio.sleep(0.3)


@asynccontextmanager
async def mcp(sb: Sandbox, *flags: str, stderr: Path | None = None) -> AsyncIterator[Session]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vmkit_tui", *sb.args(*flags, "mcp")],
        cwd=str(ROOT),
        env=child_env(),
    )
    with open(stderr or sb.data_dir / "mcp-stderr.txt", "w") as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(transport, client_info=Implementation(name=CLIENT, version="1")) as c:
            yield Session(c)


async def test_tools_are_annotated_and_readonly_has_no_write_tools(shared: Sandbox) -> None:
    async with mcp(shared) as session:
        tools = {tool.name: tool for tool in (await session.client.list_tools()).tools}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    for name in READ_TOOLS:
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint and hints.idempotent_hint, name
    for name in WRITE_TOOLS:
        hints = tools[name].annotations
        assert hints is not None and hints.destructive_hint and not hints.read_only_hint, name
        assert hints.idempotent_hint is False, name
    described = " ".join(" ".join((tools[n].description or "").split()) for n in WRITE_TOOLS)
    for fact in (
        "image must still be in GHCR",
        "database schema",
        "CURRENT secrets and environment variables are used",
        "may NOT stop a container swap already under way",
    ):
        assert fact in described, fact

    async with mcp(shared, "--readonly") as session:
        names = {tool.name for tool in (await session.client.list_tools()).tools}
        assert names == READ_TOOLS
        call = await session.client.call_tool("rollback", {"repo": REPO, "environment": "staging"})
        assert call.is_error


async def test_read_tools_answer_from_the_history_sanitised(shared: Sandbox) -> None:
    history = shared.history
    staging = shared.records("staging")
    failed = next(r for r in shared.records("production") if r.status is Status.FAILED)
    hostile = _hostile_deploy(history)
    at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    with SpoolWriter.for_deploy(shared.data_dir, hostile.id) as writer:
        writer.append_many(
            [LogRecord(at, "deploy", "github", f"line {n}") for n in range(10)]
            + [
                LogRecord(at, "127.0.0.1:2222", "kamal-proxy", "\x1b]52;c;eA==\x07healthy"),
                LogRecord(at, "deploy", "github", "ghp_" + "A1b2C3d4E5" * 4 + " " + "y" * 5000),
            ]
        )

    async with mcp(shared) as session:
        envs = (await session.ok("list_environments"))["environments"]
        mine = next(e for e in envs if (e["repo"], e["environment"]) == (REPO, "staging"))
        assert mine["live"]["sha"] == shared.live("staging").deploy.sha
        assert mine["last"]["deploy_id"] == staging[0].id
        assert mine["strategy"] == "github"

        listed = await session.ok("list_deploys", repo=REPO, environment="staging", limit=3)
        assert [d["id"] for d in listed["deploys"]] == [r.id for r in staging[:3]]
        live = next(d for d in listed["deploys"] if d["sha"] == mine["live"]["sha"])
        assert live["rollback_eligibility"] == "retained"  # its container runs on the host
        assert "kept on every host" in live["rollback_eligibility_reason"]
        only_failed = await session.ok(
            "list_deploys", repo=REPO, environment="production", status="failed"
        )
        assert only_failed["count"] > 0
        assert {d["status"] for d in only_failed["deploys"]} == {"failed"}
        pushes = await session.ok("list_deploys", repo=REPO, environment="staging", trigger="push")
        assert {d["triggered_by"] for d in pushes["deploys"]} == {"push"}

        odd = await session.ok("get_deploy", deploy_id=hostile.id)
        assert odd["actor"] == "eve[/][@click=app.quit]x" and odd["log_lines"] == 12
        assert "\x1b" not in json.dumps(odd)
        assert odd["audit_trail"][0]["summary"].startswith("recorded: manual by eve")

        detail = await session.ok("get_deploy", deploy_id=failed.id)
        assert detail["status"] == "failed"
        assert [e["seq"] for e in detail["audit_trail"]] == [e.seq for e in failed.events]
        if failed.diagnosis is not None:
            assert detail["diagnosis"]["cause"] == failed.diagnosis.cause

        tail = await session.ok("get_deploy_logs", deploy_id=hostile.id, last=2)
        assert [line["index"] for line in tail["lines"]] == [10, 11]
        assert tail["lines"][0]["text"] == "healthy"
        assert tail["lines"][1]["text"].startswith("[REDACTED] yyy")
        assert tail["lines"][1]["text"].endswith("[3011 more characters]")
        window = await session.ok(
            "get_deploy_logs", deploy_id=hostile.id, start=2, count=3, source="github"
        )
        assert [line["text"] for line in window["lines"]] == ["line 2", "line 3", "line 4"]
        assert window["next_start"] == 5 and window["total_lines"] == 12
        proxy = await session.ok("get_deploy_logs", deploy_id=hostile.id, source="kamal-proxy")
        assert [line["index"] for line in proxy["lines"]] == [10]
        typo = await session.error("get_deploy_logs", deploy_id=hostile.id, source="kamalproxy")
        # refused by the tool's schema, naming what it takes (one line)
        assert "source" in typo and "'kamal-proxy'" in typo and "'vmkit-agent'" in typo
        assert "\n" not in typo

        status = await session.ok("deploy_status", deploy_id=staging[0].id)
        assert status["status"] == staging[0].status.value
        assert status["final"] is staging[0].status.is_final

        target = default_rollback_target(staging)
        assert target is not None
        preview = await session.ok("preview_rollback", repo=REPO, environment="staging")
        assert preview["refusal"] is None
        assert preview["target"]["sha"] == target.deploy.sha
        assert preview["image"]["state"] == "present"
        short = await session.ok(
            "preview_rollback", repo=REPO, environment="staging", target=target.deploy.short_sha
        )
        assert short["target"]["sha"] == target.deploy.sha
        assert short["target"]["deploy_id"] == target.id
    assert len(shared.records("staging")) == len(staging)  # previews send nothing


async def test_bad_calls_are_one_line_tool_errors(shared: Sandbox) -> None:
    live = shared.live("production")
    gone = shared.image_gone("production")
    finished = next(r for r in shared.records("production") if r.status.is_final)
    before = len(shared.records("production"))
    async with mcp(shared) as session:
        unknown = await session.error("get_deploy", deploy_id="000000000000")
        assert "No deploy 000000000000 in the history" in unknown
        assert "Not a deploy id" in await session.error("deploy_status", deploy_id="../../etc")
        assert "not in the configuration" in await session.error(
            "list_deploys", repo="acme/nope", environment="production"
        )
        bad_args = await session.error("list_deploys", repo=REPO, environment="x", limit=500)
        assert "invalid arguments: limit: Input should be less than or equal to 50" in bad_args
        same = await session.error(
            "rollback", repo=REPO, environment="production", target=live.deploy.sha
        )
        assert "Refused, nothing was done" in same and "already live" in same
        image = await session.error(
            "rollback", repo=REPO, environment="production", target=gone.deploy.sha
        )
        assert "Refused, nothing was done" in image
        assert "no longer in GHCR" in image or "no image for this commit in GHCR" in image
        assert "nothing to cancel" in await session.error("cancel_deploy", deploy_id=finished.id)
        assert "Not a commit SHA (7 to 40" in await session.error(
            "deploy_sha", repo=REPO, environment="production", sha="abc"
        )
    assert len(shared.records("production")) == before


async def test_rollback_over_mcp_is_recorded_and_seen_by_another_process(fresh: Sandbox) -> None:
    records = fresh.records("staging")
    target, live = default_rollback_target(records), fresh.live("staging")
    assert target is not None
    stderr = fresh.data_dir / "server-stderr.txt"
    async with mcp(fresh, stderr=stderr) as session:
        started = await session.ok("rollback", repo=REPO, environment="staging")
        assert started["target_sha"] == target.deploy.sha
        assert started["target_deploy_id"] == target.id
        assert started["previous_live_sha"] == live.deploy.sha
        assert started["preflight"]["image"]["state"] == "present"
        assert any("secrets" in w for w in started["preflight"]["warnings"])
        assert "files" in started["preflight"]["migrations"]

        stored = History(fresh.config.history_path or Path()).record(started["deploy_id"])
        assert stored.deploy.triggered_by is Trigger.MCP
        assert stored.deploy.actor == CLIENT
        assert stored.deploy.rollback_of == target.id

        ended = await session.until_final(started["deploy_id"])
        assert ended["status"] == "succeeded"

    listed = fresh.subprocess("deploys", REPO, "staging", "--json", "--no-sync", "--limit", "1")
    assert listed.code == 0, listed.err
    (row,) = json.loads(listed.out)
    assert (row["id"], row["triggered_by"], row["actor"]) == (started["deploy_id"], "mcp", CLIENT)
    assert row["status"] == "succeeded"
    assert "Traceback" not in stderr.read_text()


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Sandbox]:
    """A slower clock: a cancel lands during the run's setup steps, before Kamal starts."""
    with sandbox(tmp_path / "sandbox", speed=5) as found:
        yield found


async def test_cancel_and_deploy_a_sha_over_mcp(slow: Sandbox) -> None:
    async with mcp(slow) as session:
        started = await session.ok("rollback", repo=REPO, environment="production")
        cancel = await session.ok("cancel_deploy", deploy_id=started["deploy_id"])
        assert cancel["outcome"] == "requested" and cancel["kamal_started"] is False
        assert (await session.until_final(started["deploy_id"]))["status"] == "cancelled"
        record = slow.history.record(started["deploy_id"])
        requested = next(e for e in record.events if e.kind is EventKind.CANCEL_REQUESTED)
        assert requested.data["actor"] == CLIENT and requested.data["trigger"] == "mcp"

        sha = started["target_sha"]
        deployed = await session.ok("deploy_sha", repo=REPO, environment="production", sha=sha)
        new = slow.history.record(deployed["deploy_id"])
        assert new.deploy.sha == sha and new.deploy.rollback_of is None
        assert new.deploy.triggered_by is Trigger.MCP
        busy = await session.error("rollback", repo=REPO, environment="production")
        assert "still in flight" in busy


def test_server_exits_cleanly_when_the_client_goes(shared: Sandbox) -> None:
    """Closing stdin ends the server (tracking stopped), exit status 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vmkit_tui", *shared.args("mcp")],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    out, err = process.communicate(json.dumps(request).encode() + b"\n", timeout=30)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out.decode().splitlines()[0])
    assert answer["result"]["serverInfo"]["name"] == "vmkit-tui"
    assert b"Traceback" not in err


def _hostile_deploy(history: History) -> Deploy:
    """A deploy whose actor carries markup and escape sequences, as remote text can."""
    now = datetime.now(UTC)
    deploy = Deploy(
        id=new_deploy_id(),
        repo=REPO,
        environment="preview-hostile",
        sha="f" * 40,
        triggered_by=Trigger.MANUAL,
        actor="eve\x1b[2J[/]\x1b]8;;http://x\x07[@click=app.quit]x",
        created_at=now,
    )
    history.create_deploy(deploy, [NewEvent(deploy.id, EventKind.CREATED, now)])
    return deploy
