"""The GitHub token: kept in a wrapper that never prints it, found the way `gh` finds it.

Why a wrapper: Textual's crash screen and Rich tracebacks print locals, loggers print arguments,
and f-strings print whatever they are given. A `Secret` shows `Secret('***')` in all of those;
the value comes out only through `reveal()`, which only the HTTP auth hook calls.
`redact()` is the second line of defence for any text that leaves the process (logs, error
messages, MCP answers): it blanks GitHub tokens, Authorization values and signed-URL parameters.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from urllib.parse import urlsplit

# Open-ended lengths on purpose: GitHub said tokens may grow (up to 255 characters). No
# leading word boundary: a token glued to other text (after an escape sequence) still counts.
_TOKEN = re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
_AUTH = re.compile(
    r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|token|basic)\s+)?[^\s,;'\"]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# Short-lived signed URLs (job log redirects) are credentials while valid.
_SIGNED_PARAM = re.compile(
    r"(?i)([?&](?:sig|signature|se|sv|sp|skoid|sktid|token|access_token|jwt|"
    r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&\s'\"]+"
)
_SIGNED_HINT = re.compile(r"[?&](?:s[eipvk]|token|access_token|jwt|x-amz-)")  # on lower case
_PLAIN_TOKEN = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces

ENV_VARS_GITHUB_COM = ("GH_TOKEN", "GITHUB_TOKEN")
ENV_VARS_ENTERPRISE = ("GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN")
GH_TIMEOUT_S = 5.0


class Secret:
    """A token that does not show itself: not in repr/str/format, not in pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not _PLAIN_TOKEN.fullmatch(value):
            # Never echo the rejected value: it may be a real token with a stray newline.
            raise ValueError("a token must be 1-255 printable ASCII characters without spaces")
        self._value = value

    def reveal(self) -> str:
        """The raw token. Call it only where the header is built (an `httpx.Auth`)."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible identity (for cache keys): never the token itself."""
        return hashlib.sha256(b"vmkit-tui:" + self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled (it would write the token to a file)")


class NoToken(Exception):
    """No token could be found; the message says how to provide one."""

    def __init__(self, host: str) -> None:
        env = ENV_VARS_GITHUB_COM if _is_github_com(host) else ENV_VARS_ENTERPRISE
        super().__init__(
            f"No GitHub token found for {host}. Set {env[0]} (or {env[1]}) in the environment, "
            f"or sign in with the GitHub CLI: `gh auth login --hostname {host}` "
            "(add `-s read:packages` so image checks work)."
        )
        self.host = host


def redact(text: str) -> str:
    """Blank GitHub tokens, Authorization/Bearer values and signed-URL parameters in `text`.

    Every line shown or returned comes through here (millions, for a log): in ASCII text each
    pattern runs only when a literal it cannot match without is there (`str.lower` folds ASCII
    exactly as the patterns' IGNORECASE does); other text gets every pattern."""
    if not text.isascii():
        return _redact_all(text)
    lower = text.lower()
    if "_" in text:
        text = _TOKEN.sub("[REDACTED]", text)
    if "authorization" in lower:
        text = _AUTH.sub(r"\1[REDACTED]", text)
    if "bearer" in lower:
        text = _BEARER.sub(r"\1[REDACTED]", text)
    if "=" in text and _SIGNED_HINT.search(lower):
        text = _SIGNED_PARAM.sub(r"\1[REDACTED]", text)
    return text


def _redact_all(text: str) -> str:
    text = _TOKEN.sub("[REDACTED]", text)
    text = _AUTH.sub(r"\1[REDACTED]", text)
    text = _BEARER.sub(r"\1[REDACTED]", text)
    return _SIGNED_PARAM.sub(r"\1[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """Runs every record of a logger through `redact()` (httpx logs full URLs at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Attach one `RedactingFilter` to each named logger (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def host_of(api_url: str) -> str:
    """The GitHub host an API base URL belongs to (what `gh auth token --hostname` expects)."""
    host = (urlsplit(api_url).hostname or "").lower()
    if host == "api.github.com":
        return "github.com"
    if host.startswith("api.") and host.endswith(".ghe.com"):
        return host.removeprefix("api.")
    return host


def _is_github_com(host: str) -> bool:
    return host == "github.com" or host.endswith(".ghe.com")


def discover_token(
    api_url: str,
    *,
    env: Mapping[str, str] | None = None,
    gh_timeout: float = GH_TIMEOUT_S,
) -> Secret | None:
    """Find a token like `gh` does: environment first, then `gh auth token --hostname HOST`.

    github.com and *.ghe.com use GH_TOKEN then GITHUB_TOKEN; other (Enterprise Server) hosts use
    GH_ENTERPRISE_TOKEN then GITHUB_ENTERPRISE_TOKEN, so a github.com token is never sent to
    another host. Blocking (runs a subprocess): call it before the loop or via a thread.
    """
    env = os.environ if env is None else env
    host = host_of(api_url)
    names = ENV_VARS_GITHUB_COM if _is_github_com(host) else ENV_VARS_ENTERPRISE
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return _secret_or_none(value)
    return _token_from_gh(host, env, gh_timeout) if host else None


def require_token(api_url: str, *, env: Mapping[str, str] | None = None) -> Secret:
    """`discover_token`, or `NoToken` saying how to provide one."""
    token = discover_token(api_url, env=env)
    if token is None:
        raise NoToken(host_of(api_url) or api_url)
    return token


def _token_from_gh(host: str, env: Mapping[str, str], timeout: float) -> Secret | None:
    gh = shutil.which("gh", path=env.get("PATH"))
    if gh is None:
        return None
    child_env = {**env, "GH_PROMPT_DISABLED": "1", "NO_COLOR": "1"}
    try:
        done = subprocess.run(
            [gh, "auth", "token", "--hostname", host],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        # TimeoutExpired carries the child's partial stdout (the token): drop it, say nothing.
        return None
    if done.returncode != 0:
        return None
    return _secret_or_none(done.stdout.strip())


def _secret_or_none(value: str) -> Secret | None:
    try:
        return Secret(value)
    except ValueError:
        return None
