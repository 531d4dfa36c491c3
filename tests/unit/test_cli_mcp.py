"""How the MCP server words failures: one line, no traceback, no secret, whatever went wrong.

An in-process server with tools that fail on purpose, called through the SDK's own client."""

from __future__ import annotations

from typing import Annotated, Any

from mcp import Client
from pydantic import Field

from vmkit_tui.actions.errors import ActionRefused
from vmkit_tui.frontends.mcp.server import VmkitMcpServer
from vmkit_tui.frontends.shared import UsageError

TOKEN = "ghp_" + "Q1w2E3r4T5" * 4


def _server() -> VmkitMcpServer:
    server = VmkitMcpServer("test", log_level="CRITICAL")

    async def limited(limit: Annotated[int, Field(ge=1, le=50)], name: str) -> dict[str, Any]:
        """Takes a bounded number."""
        return {"limit": limit, "name": name}

    async def refused() -> dict[str, Any]:
        """Refuses like the actions do."""
        raise ActionRefused(f"No GitHub token\x1b[2J accepted: {TOKEN}\nsecond line")

    async def usage() -> dict[str, Any]:
        """Bad input."""
        raise UsageError("acme/x production is not in the configuration.")

    async def crashes() -> dict[str, Any]:
        """A bug."""
        raise RuntimeError(f"internal detail {TOKEN}")

    for tool in (limited, refused, usage, crashes):
        server.add_tool(tool)
    return server


async def _error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    (content,) = result.content
    text = getattr(content, "text", "")
    assert "\n" not in text and "Traceback" not in text and TOKEN not in text
    return text


async def test_tool_failures_are_one_clean_line() -> None:
    async with Client(_server()) as client:
        ok = await client.call_tool("limited", {"limit": 3, "name": "x"})
        assert ok.structured_content == {"limit": 3, "name": "x"}

        assert await _error(client, "limited", {"limit": 99}) == (
            "Error executing tool limited: invalid arguments: limit: Input should be less than "
            "or equal to 50; name: Field required"
        )
        assert await _error(client, "refused", {}) == (
            "Error executing tool refused: No GitHub token accepted: [REDACTED] second line"
        )
        assert await _error(client, "usage", {}) == (
            "Error executing tool usage: acme/x production is not in the configuration."
        )
        assert await _error(client, "crashes", {}) == "Error executing tool crashes"
