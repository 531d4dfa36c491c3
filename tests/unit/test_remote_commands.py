"""Remote commands are built from validated parts only, and quoted: the remote shell parses
the whole string, so a hostile value must never run as code or pass as an option."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import pytest

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sources.ssh.commands import (
    DEFAULT_STREAMS,
    CommandContext,
    ResumePoint,
    StreamKind,
    StreamSpec,
    build_stream_command,
    infer_kind,
    kamal_lock_release,
    kamal_lock_status,
    kamal_redeploy,
    kamal_rollback,
)

SHA = "9f2c1ab4e0d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0"
SINCE = datetime(2026, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)
CURSOR = "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8ba4ef8;m=3c8b4a3c;t=563b9b2d3f8c0;x=d6a6a0bf0c6e3e77"

# Shell metacharacters, options, paths, control and non-ASCII characters, the empty string:
# each must be rejected, or round-trip as one literal argument.
HOSTILE = [
    "$(id)",
    "`id`",
    "; rm -rf /",
    "a" * 40 + "\n",
    "-f",
    "--help",
    "٣" * 40,
    "",
    "x y",
    "web'; touch /tmp/pwned; '",
    "web\x00",
    "../../etc",
    "web|sh",
    "web&",
    "${IFS}",
    "web\nkamal",
]
HOSTILE_SHAS = [
    *HOSTILE,
    SHA[:39],
    SHA + "0",
    SHA.upper(),
    SHA + "\n",
    " " + SHA,
    "g" * 40,
]


def test_default_streams_render_with_validated_quoted_parts() -> None:
    ctx = CommandContext(service="web", destination="production", sha=SHA)
    proxy = build_stream_command(DEFAULT_STREAMS["kamal-proxy"], ctx, ResumePoint(since=SINCE))
    assert shlex.split(proxy) == [
        "docker", "logs", "--follow", "--timestamps",
        "--since", "2026-05-01T10:00:00.250000Z", "--", "kamal-proxy",
    ]  # fmt: skip
    app = build_stream_command(DEFAULT_STREAMS["app"], ctx, ResumePoint(since=SINCE))
    assert shlex.split(app)[-2:] == ["--", f"web-web-production-{SHA}"]
    agent = build_stream_command(DEFAULT_STREAMS["vmkit-agent"], ctx, ResumePoint(since=SINCE))
    assert shlex.split(agent) == [
        "journalctl", "--unit", "vmkit-agent", "--follow", "--output", "json", "--no-pager",
        "--since", f"@{int(SINCE.timestamp())}",
    ]  # fmt: skip


def test_resume_points_pick_the_most_precise_option() -> None:
    docker, journal = DEFAULT_STREAMS["kamal-proxy"], DEFAULT_STREAMS["vmkit-agent"]
    ctx = CommandContext()
    exact = "2026-05-01T10:00:01.123456789Z"
    assert shlex.split(build_stream_command(docker, ctx, ResumePoint(SINCE, exact)))[4:6] == [
        "--since",
        exact,
    ]
    assert "--tail" in shlex.split(build_stream_command(docker, ctx))
    resumed = build_stream_command(journal, ctx, ResumePoint(SINCE, cursor=CURSOR))
    assert shlex.split(resumed)[-2:] == ["--after-cursor", CURSOR]
    assert f"'{CURSOR}'" in resumed  # the cursor's ';' is quoted, never a command separator
    assert shlex.split(build_stream_command(journal, ctx))[-2:] == ["--lines", "100"]


def test_app_container_name_follows_kamal_naming() -> None:
    assert CommandContext(service="web", sha=SHA).container == f"web-web-{SHA}"
    assert CommandContext(
        service="api", role="worker", destination="staging", sha=SHA
    ).container == (f"api-worker-staging-{SHA}")
    with pytest.raises(ValidationError):
        _ = CommandContext(service="web").container


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["service", "destination", "role"])
def test_hostile_names_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        CommandContext(**{field: value})


@pytest.mark.parametrize("value", HOSTILE_SHAS)
def test_hostile_shas_are_rejected_everywhere(value: str) -> None:
    with pytest.raises(ValidationError):
        CommandContext(sha=value)
    with pytest.raises(ValidationError):
        kamal_rollback(value)
    with pytest.raises(ValidationError):
        kamal_redeploy(value)


@pytest.mark.parametrize("value", [*HOSTILE, "2026-05-01T10:00:00Z; id", "2026-05-01"])
def test_hostile_resume_points_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        build_stream_command(
            DEFAULT_STREAMS["kamal-proxy"], CommandContext(), ResumePoint(timestamp=value)
        )
    with pytest.raises(ValidationError):
        build_stream_command(
            DEFAULT_STREAMS["vmkit-agent"], CommandContext(), ResumePoint(cursor=value)
        )


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_kamal_destinations_and_workdirs_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        kamal_lock_status(destination=value)
    if value != "../../etc":  # a relative path is a legitimate working directory
        with pytest.raises(ValidationError):
            kamal_lock_status(workdir=value)


def test_kamal_commands() -> None:
    assert kamal_rollback(SHA) == f"kamal rollback {SHA}"
    assert shlex.split(kamal_redeploy(SHA, destination="production")) == [
        "kamal", "deploy", "--skip-push", "--version", SHA, "-d", "production",
    ]  # fmt: skip
    assert kamal_lock_status(destination="staging") == "kamal lock status -d staging"
    assert kamal_lock_release() == "kamal lock release"
    in_dir = kamal_rollback(SHA, workdir="apps/web-shop")
    assert in_dir == f"cd -- apps/web-shop && kamal rollback {SHA}"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("docker logs {since} {nope}", "unknown placeholder"),
        ("docker logs {since} {service!r}", "unknown placeholder"),
        ("docker logs {since} {service:>20}", "unknown placeholder"),
        ("docker logs {since} {}", "unknown placeholder"),
        ("docker logs {since} {0}", "unknown placeholder"),
        ("docker logs {since} {service.__class__}", "unknown placeholder"),
        ("docker logs --since={since} web", "stand alone"),
        ('docker logs "{since}" web', "stand alone"),
        ("docker logs {since} {since} web", "exactly once"),
        ("docker logs 'unbalanced {since}", "bad command template"),
        ("docker logs {since", "bad command template"),
        ("docker logs {since}\nrm -rf /", "one line"),
        ("   ", "empty"),
    ],
)
def test_bad_templates_get_a_clear_error(template: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        StreamSpec("app", template, StreamKind.DOCKER)


def test_resumable_kinds_need_since_and_plain_cannot_have_it() -> None:
    with pytest.raises(ValidationError, match="needs \\{since\\}"):
        StreamSpec("app", "docker logs -f web", StreamKind.DOCKER)
    with pytest.raises(ValidationError, match="cannot use"):
        StreamSpec("app", "tail -f x {since}", StreamKind.PLAIN)
    with pytest.raises(ValidationError):
        StreamSpec("bad source!", "tail -f x", StreamKind.PLAIN)


def test_config_templates_infer_their_kind() -> None:
    assert infer_kind("/usr/bin/journalctl -u app -f -o json {since}") is StreamKind.JOURNAL
    assert infer_kind("docker compose logs -f -t {since} {service}") is StreamKind.DOCKER
    assert infer_kind("tail -F /var/log/app.log") is StreamKind.PLAIN
    spec = StreamSpec.from_config("worker", "docker logs -f -t {since} -- {service}-worker")
    assert spec.kind is StreamKind.DOCKER and spec.resumable
    assert StreamSpec.from_config("syslog", "tail -F /var/log/syslog", "plain").resumable is False


def test_template_literal_text_is_kept_and_placeholders_are_quoted() -> None:
    spec = StreamSpec.from_config(
        "app", "docker logs -t {since} {service}-web 2>&1 | grep -v health"
    )
    command = build_stream_command(
        spec, CommandContext(service="shop.v2"), ResumePoint(since=SINCE)
    )
    assert command == (
        "docker logs -t --since 2026-05-01T10:00:00.250000Z shop.v2-web 2>&1 | grep -v health"
    )


def test_a_placeholder_without_a_configured_value_is_an_error() -> None:
    spec = StreamSpec.from_config("app", "docker logs -t {since} {destination}")
    with pytest.raises(ValidationError, match="no destination is configured"):
        build_stream_command(spec, CommandContext(service="web"))
