"""Fixtures for tests against the sandbox GitHub server.

A test module asks for them explicitly with `pytest_plugins = ["tests.integration.sandbox_fixtures"]`.
`sandbox` serves the seeded `world` (from `tests.world_fixtures`) on 127.0.0.1, `api` is a
plain httpx client with the sandbox token (`auth` holds its headers), and `schema(path, method,
status, body)` validates a response body against the schema GitHub publishes for that operation
and status (tests/data/github-openapi-subset.json).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.world_fixtures"]

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "data" / "github-openapi-subset.json"
SCHEMA_URI = "urn:github-openapi-subset"
AUTH = {"Authorization": f"Bearer {SANDBOX_TOKEN}", "X-GitHub-Api-Version": "2022-11-28"}


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes "or null"."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _registry() -> Registry:
    document = _json_schema(json.loads(SCHEMA_FILE.read_text()))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(SCHEMA_URI, resource)


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def assert_schema(path: str, method: str, status: int, body: Any) -> None:
    """Validate `body` against the response schema GitHub publishes (resolving `$ref`s)."""
    document = _registry().contents(SCHEMA_URI)
    operation = document["paths"][path][method.lower()]
    content = operation["responses"][str(status)]["content"]["application/json"]
    assert "schema" in content, (path, method, status)
    ref = f"{SCHEMA_URI}#/" + _pointer("paths", path, method.lower(), "responses", str(status))
    ref += "/content/application~1json/schema"
    validator = Draft202012Validator({"$ref": ref}, registry=_registry())
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}" for error in errors[:10]
    )


@pytest.fixture
async def sandbox(world: World) -> AsyncIterator[GitHubSandbox]:
    server = GitHubSandbox(world)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def api(sandbox: GitHubSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=AUTH, timeout=10) as client:
        yield client


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


@pytest.fixture
def schema() -> Callable[[str, str, int, Any], None]:
    return assert_schema
