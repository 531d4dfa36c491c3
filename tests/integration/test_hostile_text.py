"""Hostile remote text through the sandbox to the CLI and the MCP server: a commit message and
log lines carrying a token, bidi/zero-width characters, markup and an OSC 52 clipboard write.

The commit is pushed in the sandbox world, so its message reaches vmkit-tui the way a real one
does (GitHub's run title, over HTTP, recorded by a sync); the log lines are written to that
deploy's spool. What is shown or returned is sanitised; what is stored keeps the original bytes.
The MCP server also refuses arguments a tool does not take and values outside an enum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.integration.cli_fixtures import SPEED
from tests.integration.cli_sandbox import REPO, Sandbox, sandbox
from tests.integration.test_mcp import mcp
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.store.spool import LogRecord, SpoolReader, SpoolWriter, spool_path

TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"  # the shape of a classic personal access token
HOSTILE = f"Fix {TOKEN} \u202etxt.exe\u200b [@click=app.quit]x \x1b]52;c;cm0gLXJmIH4=\x07 done"
SHOWN = "Fix [REDACTED] ⟨U+202E⟩txt.exe⟨U+200B⟩ [@click=app.quit]x  done"
LOG_LINE = f"\x1b[31mpushed with {TOKEN}\x1b[0m \u2066rtl\u2069 [@click=app.quit]x\x1b]0;t\x07"
LOG_SHOWN = "pushed with [REDACTED] ⟨U+2066⟩rtl⟨U+2069⟩ [@click=app.quit]x"
RAW = (TOKEN, "\u202e", "\u200b", "\u2066", "\x1b", "\x07")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, str]]:
    """A sandbox with a hostile push on staging, recorded by a sync, and a hostile log line."""
    with sandbox(tmp_path_factory.mktemp("hostile"), speed=SPEED) as found:

        def push(world: World) -> None:
            world.push(REPO, "staging", message=HOSTILE)

        found.world(push)
        synced = found.subprocess("deploys", REPO, "staging", "--limit", "1")
        assert synced.code == 0, synced.err
        (record,) = [r for r in found.records("staging") if TOKEN in r.title]
        at = datetime.now(UTC)
        with SpoolWriter.for_deploy(found.data_dir, record.id) as writer:
            writer.append(LogRecord(at, "deploy\u202e", "github", LOG_LINE))
        yield found, record.id


def assert_inert(text: str) -> None:
    for raw in RAW:
        assert raw not in text, repr(raw)


def test_cli_output_is_sanitised_and_storage_keeps_the_bytes(
    hostile: tuple[Sandbox, str],
) -> None:
    sb, deploy_id = hostile
    assert sb.history.record(deploy_id).title == HOSTILE
    with SpoolReader(spool_path(sb.data_dir, deploy_id)) as reader:
        assert any(reader.line(i).text == LOG_LINE for i in range(len(reader)))
    listed = sb.subprocess("deploys", REPO, "staging", "--json", "--no-sync")
    assert listed.code == 0, listed.err
    assert_inert(listed.out)
    (row,) = [row for row in json.loads(listed.out) if row["id"] == deploy_id]
    assert row["title"] == SHOWN
    logs = sb.subprocess("logs", deploy_id, "--source", "github")
    assert logs.code == 0, logs.err
    assert_inert(logs.out)
    assert f"github[deploy⟨U+202E⟩] {LOG_SHOWN}" in logs.out


async def test_mcp_answers_are_sanitised(hostile: tuple[Sandbox, str]) -> None:
    sb, deploy_id = hostile
    async with mcp(sb) as session:
        listed = await session.ok("list_deploys", repo=REPO, environment="staging")
        found = await session.ok("get_deploy", deploy_id=deploy_id)
        logs = await session.ok(
            "get_deploy_logs", deploy_id=deploy_id, source="github", start=0, count=500
        )
    for answer in (listed, found, logs):
        assert_inert(json.dumps(answer, ensure_ascii=False))
    assert found["title"] == SHOWN
    assert any(line["text"] == LOG_SHOWN for line in logs["lines"])


async def test_mcp_refuses_unknown_arguments_and_values_outside_an_enum(
    hostile: tuple[Sandbox, str],
) -> None:
    sb, deploy_id = hostile
    async with mcp(sb) as session:
        tools = (await session.client.list_tools()).tools
        assert all(tool.input_schema.get("additionalProperties") is False for tool in tools)
        extra = await session.error("get_deploy", deploy_id=deploy_id, verbose=True)
        assert "unknown argument 'verbose' (it takes: deploy_id)" in extra
        escaped = await session.error("get_deploy", deploy_id=deploy_id, **{"x\x1b]0;t\x07": 1})
        assert "unknown argument 'x\\x1b]0;t\\x07'" in escaped and "\x1b" not in escaped
        source = await session.error("get_deploy_logs", deploy_id=deploy_id, source="git\x1bhub")
        assert "invalid arguments: source: Input should be 'github'" in source
        assert "\x1b" not in source
        for field, value in (("status", "finished"), ("trigger", "cron")):
            wrong = await session.error(
                "list_deploys", repo=REPO, environment="staging", **{field: value}
            )
            assert f"invalid arguments: {field}: Input should be" in wrong
        none = await session.error("list_environments", everything=True)
        assert "unknown argument 'everything' (it takes: no arguments)" in none
