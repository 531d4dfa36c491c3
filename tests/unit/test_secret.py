"""The token wrapper, redaction, and token discovery (env vars, then a real `gh` subprocess)."""

from __future__ import annotations

import logging
import os
import pickle
import stat
import traceback
from pathlib import Path

import pytest

from vmkit_tui.domain.secret import (
    NoToken,
    RedactingFilter,
    Secret,
    discover_token,
    host_of,
    redact,
    require_token,
)

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
FINE = "github_pat_11ABCDEFG0" + "x" * 72


def test_secret_never_shows_itself() -> None:
    secret = Secret(TOKEN)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert TOKEN not in shown and "***" in shown
    assert secret.reveal() == TOKEN
    assert TOKEN not in secret.fingerprint and len(secret.fingerprint) == 16
    assert Secret(TOKEN).fingerprint == secret.fingerprint != Secret(FINE).fingerprint


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(TOKEN))


def test_secret_not_in_a_traceback_with_locals() -> None:
    def fail(token: Secret) -> None:
        raise RuntimeError("boom")

    try:
        fail(Secret(TOKEN))
    except RuntimeError as error:
        text = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
    assert "boom" in text and TOKEN not in text


def test_bad_token_value_is_not_echoed() -> None:
    with pytest.raises(ValueError) as caught:
        Secret(TOKEN + "\n")
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "token",
    [TOKEN, "gho_" + "z" * 36, "ghu_" + "Y" * 36, "ghs_" + "0" * 36, "ghr_" + "q" * 40, FINE],
)
def test_redact_github_tokens(token: str) -> None:
    text = f"cloning with {token}, then {token}."
    assert redact(text) == "cloning with [REDACTED], then [REDACTED]."


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: [REDACTED]"),
        ("authorization=token deadbeefcafe", "authorization=[REDACTED]"),
        ("{'authorization': 'Basic dXNlcjpwYXNz'}", "'authorization': '[REDACTED]'"),
        ("sent bearer eyJhbGciOiJSUzI1NiJ9.payload", "sent bearer [REDACTED]"),
    ],
)
def test_redact_authorization_values(text: str, kept: str) -> None:
    assert kept in redact(text)
    assert "abc.def" not in redact(text) and "dXNlcjpwYXNz" not in redact(text)


def test_redact_signed_url_parameters() -> None:
    url = (
        "https://productionresultssa11.blob.core.windows.net/actions-results/x/logs/job/"
        "job-logs.txt?rsct=text%2Fplain&se=2026-05-01T10%3A01%3A00Z&sig=AbC%2Bdef%3D&sp=r&sv=2021"
    )
    cleaned = redact(url)
    assert "AbC%2Bdef" not in cleaned and "sig=[REDACTED]" in cleaned
    assert "se=[REDACTED]" in cleaned and "rsct=text%2Fplain" in cleaned
    assert redact("plain text about tokens and sigs") == "plain text about tokens and sigs"


@pytest.mark.parametrize(
    "text",
    [
        f"x {TOKEN} y",
        "AUTHORIZATION: Bearer abcdefgh12",
        "AuThOrIzAtIoN=secretvalue",
        "BEARER abcdefgh12345",
        "GET /x?SIG=abc&Se=2026&SP=r&SV=1&SKOID=k&SKTID=t",
        "GET /x?X-Amz-Signature=abc&X-AMZ-CREDENTIAL=def&access_token=ghi&JWT=jkl&Token=mno",
        "https://h/p?a=1&signature=zzz",
        "no secret here = fine ? & _ gh",
    ],
)
def test_redact_fast_path_equals_every_pattern(text: str) -> None:
    """The cheap literal checks that skip patterns never skip one that would have matched."""
    from vmkit_tui.domain.secret import _redact_all

    assert redact(text) == _redact_all(text)
    assert redact(text + " é") == _redact_all(text + " é")  # non-ASCII: every pattern runs


def test_redacting_filter_cleans_log_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.secret.filter")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.secret.filter"):
        logger.info("HTTP Request: GET %s with %s", "https://h/x?sig=SECRETSIG", TOKEN)
    assert caplog.records and "SECRETSIG" not in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("api_url", "host"),
    [
        ("https://api.github.com", "github.com"),
        ("https://ghe.corp.example/api/v3", "ghe.corp.example"),
        ("https://api.acme.ghe.com", "acme.ghe.com"),
        ("http://127.0.0.1:8123", "127.0.0.1"),
    ],
)
def test_host_of(api_url: str, host: str) -> None:
    assert host_of(api_url) == host


def test_env_order_for_github_com() -> None:
    env = {"GITHUB_TOKEN": "ghs_second", "GH_TOKEN": "gho_first", "PATH": ""}
    assert discover_token("https://api.github.com", env=env).reveal() == "gho_first"
    del env["GH_TOKEN"]
    assert discover_token("https://api.github.com", env=env).reveal() == "ghs_second"


def test_enterprise_host_never_gets_the_github_com_token() -> None:
    env = {"GH_TOKEN": "gho_dotcom", "GITHUB_ENTERPRISE_TOKEN": "ghp_enterprise", "PATH": ""}
    assert discover_token("https://ghe.corp/api/v3", env=env).reveal() == "ghp_enterprise"
    assert discover_token("https://ghe.corp/api/v3", env={"GH_TOKEN": "x", "PATH": ""}) is None


def fake_gh(tmp_path: Path, body: str) -> dict[str, str]:
    script = tmp_path / "gh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(tmp_path), "HOME": os.environ.get("HOME", "/tmp")}


def test_gh_auth_token_is_asked_for_the_right_host(tmp_path: Path) -> None:
    args = tmp_path / "args"
    env = fake_gh(tmp_path, f'echo "$@" > {args}\necho {TOKEN}')
    token = discover_token("https://ghe.corp/api/v3", env=env)
    assert token is not None and token.reveal() == TOKEN
    assert args.read_text().strip() == "auth token --hostname ghe.corp"


def test_gh_without_a_token_gives_none(tmp_path: Path) -> None:
    env = fake_gh(tmp_path, 'echo "no oauth token found for github.com" >&2; exit 1')
    assert discover_token("https://api.github.com", env=env) is None


def test_gh_that_hangs_gives_none_quickly(tmp_path: Path) -> None:
    env = fake_gh(tmp_path, f"echo {TOKEN}; exec sleep 30")
    assert discover_token("https://api.github.com", env=env, gh_timeout=0.3) is None


def test_require_token_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(NoToken) as caught:
        require_token("https://api.github.com", env={"PATH": str(tmp_path)})
    message = str(caught.value)
    assert "GH_TOKEN" in message and "gh auth login --hostname github.com" in message
    with pytest.raises(NoToken, match="GH_ENTERPRISE_TOKEN"):
        require_token("https://ghe.corp/api/v3", env={"PATH": str(tmp_path)})
