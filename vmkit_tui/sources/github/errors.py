"""One error hierarchy for everything the GitHub client can report, and which of them an HTTP
status means.

Every message names the endpoint (method and path, never the query string: signed log URLs carry
credentials there) and quotes at most a short, redacted piece of GitHub's own message.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import orjson

from vmkit_tui.domain.secret import redact

MESSAGE_LIMIT = 200


class GitHubError(Exception):
    """Base class: `endpoint` like 'GET /repos/o/r/actions/runs/1', `status` if HTTP answered."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        text = redact(message)[:MESSAGE_LIMIT]
        prefix = f"{endpoint}: " if endpoint else ""
        super().__init__(f"{prefix}{text}")
        self.endpoint = endpoint
        self.status = status


class AuthError(GitHubError):
    """401 (the token is invalid or expired) or a 403 that is not a rate limit (no permission)."""


class NotFound(GitHubError):
    """404: missing, or private and not visible to this token (GitHub does not say which)."""


class Rejected(GitHubError):
    """GitHub refused the request as invalid (400, 409, 422): its message says why."""


class RateLimited(GitHubError):
    """Rate limited; retry no earlier than `until` (`wait` seconds from when it was raised)."""

    def __init__(
        self,
        *,
        wait: float,
        until: datetime,
        secondary: bool,
        endpoint: str = "",
        status: int | None = None,
    ) -> None:
        kind = "secondary rate limit" if secondary else "rate limit"
        super().__init__(
            f"GitHub {kind}: retry after {until:%H:%M:%S} UTC (in {wait:.0f} s)",
            endpoint=endpoint,
            status=status,
        )
        self.wait = wait
        self.until = until
        self.secondary = secondary


class Unavailable(GitHubError):
    """GitHub did not answer usefully after the retries (5xx, timeouts, dropped connections)."""


class BadResponse(GitHubError):
    """GitHub answered something this client cannot use (malformed JSON, wrong shape)."""


class ResponseLost(Unavailable):
    """A request that may have reached GitHub got no usable answer (timeout, dropped
    connection, 5xx): its effect is unknown, so it must not be blindly re-sent."""


class TooLarge(BadResponse):
    """The answer was larger than any real GitHub answer (a misbehaving server or proxy): it
    was cut off unread, and is never retried (it would be as large again)."""


def github_message(status: int, content: bytes) -> str:
    """GitHub's `message` field of an error body (never the raw body: it can be huge)."""
    if status < 300 or not content:
        return ""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def status_error(status: int, message: str, headers: httpx.Headers, endpoint: str) -> GitHubError:
    if status == 401:
        return AuthError(
            f"401 bad credentials: the token is invalid or expired ({message})",
            endpoint=endpoint,
            status=status,
        )
    if status == 403:
        needs = headers.get("x-accepted-github-permissions")
        hint = f" (needs {needs})" if needs else ""
        if headers.get("x-github-sso"):
            hint += " (authorise the token for the organisation's SSO)"
        return AuthError(f"403 forbidden: {message}{hint}", endpoint=endpoint, status=status)
    if status == 404:
        return NotFound(f"404 not found: {message}", endpoint=endpoint, status=status)
    if 400 <= status < 500:
        return Rejected(f"{status}: {message}", endpoint=endpoint, status=status)
    if 500 <= status < 600:
        return Unavailable(f"{status}: {message}", endpoint=endpoint, status=status)
    return BadResponse(f"unexpected status {status}", endpoint=endpoint, status=status)
