"""Reading a response body with a size cap, so a server that never stops sending (or sends a
100 MB "JSON" answer) costs a bounded amount of memory and is refused instead of buffered."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import httpx

from vmkit_tui.sources.github.errors import TooLarge

MIB = 1024 * 1024
MAX_JSON_BYTES = 8 * MIB  # GitHub's largest pages (100 runs with commits) are well under 2 MB
MAX_LOG_READ = 100 * MIB  # a job log is not read past this; its tail up to max_log_bytes is kept


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    total: int  # bytes read (more than len(data) when the head was dropped)
    stopped: bool  # reading stopped at the limit: there was more


async def read_tail(response: httpx.Response, *, keep: int, stop: int) -> Body:
    """Read at most about `stop` bytes of the (decoded) body, keeping only the last `keep`."""
    chunks: deque[bytes] = deque()
    held = total = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        held += len(chunk)
        total += len(chunk)
        while held - len(chunks[0]) >= keep:
            held -= len(chunks.popleft())
        if total > stop:
            return Body(b"".join(chunks)[-keep:], total, True)
    return Body(b"".join(chunks)[-keep:] if held > keep else b"".join(chunks), total, False)


async def read_json_body(response: httpx.Response, endpoint: str, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it (or its declared length) passes `limit`."""
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(response, endpoint, limit)
    body = await read_tail(response, keep=limit, stop=limit)
    if body.stopped:
        raise _too_large(response, endpoint, limit)
    return body.data


def _too_large(response: httpx.Response, endpoint: str, limit: int) -> TooLarge:
    return TooLarge(
        f"the answer is over {limit // MIB} MB (no GitHub answer is that large): "
        "refused and not retried; is api_url a GitHub API?",
        endpoint=endpoint,
        status=response.status_code,
    )
