"""Commands run on the VMs over SSH, built only from validated, shell-quoted parts.

An SSH exec request is one string parsed by the remote login shell: there is no argv form.
So every value that comes from config, GitHub or a previous remote answer (service and
destination names, SHAs, timestamps, journal cursors) is validated against a strict pattern
first and `shlex.quote`d second; names must start with a letter or digit so none can pass as
an option, and `--` ends the options where the tool supports it.

Log stream commands are templates. The config may override them with plain strings using
these placeholders (each must be present in the context when used):

- `{service}`, `{destination}`, `{role}`: Kamal names (`[A-Za-z0-9][A-Za-z0-9_.-]*`);
- `{sha}`: a full 40-hex commit SHA;
- `{container}`: Kamal's container name, `<service>-<role>[-<destination>]-<sha>`;
- `{since}`: where the stream starts or resumes, expanded to whole options by the stream
  kind, so it must stand alone as a word. Docker: `--since <timestamp>` (first connection:
  the deploy start; after a drop: the last line's own timestamp) or `--tail 100`. Journal:
  `--since @<epoch>`, `--after-cursor <cursor>` or `--lines 100`.

Why the journal stream uses `-o json` rather than `-o short-iso --show-cursor`: with
`--follow`, journalctl prints the cursor only when it exits, which never happens when the
connection drops; the JSON output carries each entry's `__CURSOR`, so a reconnect resumes
exactly after the last entry received.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from string import Formatter

from vmkit_tui.domain.models import (
    WORKDIR_PATTERN,
    ValidationError,
    to_iso,
    validate_name,
    validate_sha,
)

__all__ = [
    "DEFAULT_STREAMS",
    "PLACEHOLDERS",
    "CommandContext",
    "ResumePoint",
    "StreamKind",
    "StreamSpec",
    "build_stream_command",
    "infer_kind",
    "kamal_lock_release",
    "kamal_lock_status",
    "kamal_redeploy",
    "kamal_rollback",
    "since_arguments",
]

PLACEHOLDERS = frozenset({"service", "destination", "role", "sha", "container", "since"})
INITIAL_LINES = 100  # lines of history shown when a stream starts with no start time

# A log line's own timestamp as docker prints it (RFC 3339, up to nanoseconds).
TIMESTAMP_PATTERN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
# A journald cursor: `s=<hex>;i=<hex>;b=<hex>;m=<hex>;t=<hex>;x=<hex>`.
CURSOR_PATTERN = re.compile(r"[A-Za-z0-9]+=[0-9A-Za-z]+(?:;[A-Za-z0-9]+=[0-9A-Za-z]+){0,15}")


class StreamKind(StrEnum):
    """How a log command's lines carry time and how the stream resumes after a drop."""

    DOCKER = "docker"  # `docker logs --timestamps`: resume with `--since <last timestamp>`
    JOURNAL = "journal"  # `journalctl -o json`: resume with `--after-cursor <last cursor>`
    PLAIN = "plain"  # anything else: re-run on reconnect (lines may be missing or repeated)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """The deploy-specific values a command may use; validated on creation."""

    service: str | None = None
    destination: str | None = None
    role: str = "web"
    sha: str | None = None

    def __post_init__(self) -> None:
        if self.service is not None:
            validate_name(self.service, "service name")
        if self.destination is not None:
            validate_name(self.destination, "destination name")
        validate_name(self.role, "role name")
        if self.sha is not None:
            validate_sha(self.sha)

    @property
    def container(self) -> str:
        """Kamal's container name for this version: `<service>-<role>[-<destination>]-<sha>`."""
        if self.service is None or self.sha is None:
            raise ValidationError("the app container name needs the service name and the SHA")
        parts = [self.service, self.role, self.destination, self.sha]
        return "-".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a stream starts (`since`) or resumes (`timestamp`/`cursor` of the last line)."""

    since: datetime | None = None
    timestamp: str | None = None
    cursor: str | None = None


def since_arguments(kind: StreamKind, resume: ResumePoint) -> list[str]:
    """The options `{since}` expands to, most precise resume point first."""
    if kind is StreamKind.DOCKER:
        if resume.timestamp is not None:
            if not TIMESTAMP_PATTERN.fullmatch(resume.timestamp):
                raise ValidationError(f"not a log timestamp: {resume.timestamp!r:.60}")
            return ["--since", resume.timestamp]
        if resume.since is not None:
            return ["--since", to_iso(resume.since)]
        return ["--tail", str(INITIAL_LINES)]
    if kind is StreamKind.JOURNAL:
        if resume.cursor is not None:
            if not CURSOR_PATTERN.fullmatch(resume.cursor):
                raise ValidationError(f"not a journal cursor: {resume.cursor!r:.60}")
            return ["--after-cursor", resume.cursor]
        if resume.since is not None:
            return ["--since", f"@{math.floor(resume.since.timestamp())}"]
        return ["--lines", str(INITIAL_LINES)]
    raise ValidationError("a plain stream command cannot resume: it has no {since}")


def _parse_template(template: str) -> list[tuple[str, str | None]]:
    """(literal, placeholder) pairs; rejects unknown placeholders and format tricks."""
    if not isinstance(template, str) or not template.strip():
        raise ValidationError("empty command template")
    if "\n" in template or "\r" in template or "\0" in template:
        raise ValidationError("a command template must be one line")
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(f"bad command template {template!r:.80}: {exc}") from None
    pairs: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            shown = "{" + field + ("!" + conversion if conversion else "") + "}"
            raise ValidationError(
                f"unknown placeholder {shown} in command template; "
                f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}"
            )
        pairs.append((literal, field))
    return pairs


def _check_template(template: str, kind: StreamKind) -> None:
    pairs = _parse_template(template)
    fields = [field for _, field in pairs if field]
    uses_since = "since" in fields
    if kind is StreamKind.PLAIN and uses_since:
        raise ValidationError("a plain stream command cannot use {since}")
    if kind is not StreamKind.PLAIN and fields.count("since") != 1:
        raise ValidationError(
            f"a {kind.value} stream command needs {{since}} exactly once, "
            "so it can resume after a dropped connection without repeating lines"
        )
    for index, (literal, field) in enumerate(pairs):
        if field != "since":
            continue
        after = pairs[index + 1][0] if index + 1 < len(pairs) else ""
        if (literal and not literal[-1].isspace()) or (after and not after[0].isspace()):
            raise ValidationError("{since} must stand alone as a word in the command template")
    try:
        shlex.split(_render(pairs, dict.fromkeys(fields, "x")))
    except ValueError as exc:
        raise ValidationError(f"bad command template {template!r:.80}: {exc}") from None


def _render(pairs: list[tuple[str, str | None]], values: Mapping[str, str]) -> str:
    return "".join(literal + (values[field] if field else "") for literal, field in pairs)


def infer_kind(template: str) -> StreamKind:
    """A config template without an explicit kind: `{since}` with journalctl is a journal
    stream, `{since}` with anything else follows docker's `--since` convention."""
    pairs = _parse_template(template)
    if all(field != "since" for _, field in pairs):
        return StreamKind.PLAIN
    try:
        words = shlex.split(_render(pairs, {f: "x" for _, f in pairs if f}))
    except ValueError as exc:
        raise ValidationError(f"bad command template {template!r:.80}: {exc}") from None
    if any(PurePosixPath(word).name == "journalctl" for word in words):
        return StreamKind.JOURNAL
    return StreamKind.DOCKER


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A log stream on a VM: its source label, command template and kind (validated)."""

    source: str
    template: str
    kind: StreamKind

    def __post_init__(self) -> None:
        validate_name(self.source, "log source name")
        object.__setattr__(self, "kind", StreamKind(self.kind))
        _check_template(self.template, self.kind)

    @classmethod
    def from_config(cls, source: str, template: str, kind: str | None = None) -> StreamSpec:
        return cls(source, template, StreamKind(kind) if kind else infer_kind(template))

    @property
    def resumable(self) -> bool:
        return self.kind is not StreamKind.PLAIN


DEFAULT_STREAMS: Mapping[str, StreamSpec] = {
    spec.source: spec
    for spec in (
        StreamSpec(
            "kamal-proxy",
            "docker logs --follow --timestamps {since} -- kamal-proxy",
            StreamKind.DOCKER,
        ),
        StreamSpec(
            "vmkit-agent",
            "journalctl --unit vmkit-agent --follow --output json --no-pager {since}",
            StreamKind.JOURNAL,
        ),
        StreamSpec(
            "app",
            "docker logs --follow --timestamps {since} -- {container}",
            StreamKind.DOCKER,
        ),
    )
}


def build_stream_command(
    spec: StreamSpec, context: CommandContext, resume: ResumePoint | None = None
) -> str:
    """The remote command for `spec`, with every placeholder validated and quoted."""
    pairs = _parse_template(spec.template)
    values: dict[str, str] = {}
    for _, field in pairs:
        if field is None or field in values:
            continue
        if field == "since":
            words = since_arguments(spec.kind, resume or ResumePoint())
            values[field] = " ".join(shlex.quote(word) for word in words)
        elif field == "container":
            values[field] = shlex.quote(context.container)
        else:
            value = getattr(context, field)
            if value is None:
                raise ValidationError(
                    f"the {spec.source} command uses {{{field}}} but no {field} is configured"
                )
            values[field] = shlex.quote(value)
    return _render(pairs, values)


def _kamal(words: list[str], destination: str | None, workdir: str | None) -> str:
    """`kamal <words> [-d <destination>]`, run from `workdir` (relative to the deploy user's
    home) when given."""
    argv = ["kamal", *words]
    if destination is not None:
        argv += ["-d", validate_name(destination, "destination name")]
    command = " ".join(shlex.quote(word) for word in argv)
    if workdir is None:
        return command
    if not isinstance(workdir, str) or not WORKDIR_PATTERN.fullmatch(workdir):
        raise ValidationError(f"invalid kamal working directory: {workdir!r:.60}")
    return f"cd -- {shlex.quote(workdir)} && {command}"


def kamal_rollback(sha: str, *, destination: str | None = None, workdir: str | None = None) -> str:
    """`kamal rollback <sha>`: fast, but only if that version's container is still on every
    host (Kamal keeps the last 5); it prints an error and exits 0 otherwise."""
    return _kamal(["rollback", validate_sha(sha)], destination, workdir)


def kamal_redeploy(sha: str, *, destination: str | None = None, workdir: str | None = None) -> str:
    """`kamal deploy --skip-push --version <sha>`: pulls that SHA's image from the registry,
    so it works for any version still in GHCR, without a rebuild."""
    return _kamal(["deploy", "--skip-push", "--version", validate_sha(sha)], destination, workdir)


def kamal_lock_status(*, destination: str | None = None, workdir: str | None = None) -> str:
    return _kamal(["lock", "status"], destination, workdir)


def kamal_lock_release(*, destination: str | None = None, workdir: str | None = None) -> str:
    return _kamal(["lock", "release"], destination, workdir)
