"""Plain-text and JSON views of deploys, preflights and logs, shared by the CLI and the MCP server.

Everything here is pure (no I/O, no Textual). Remote text (actors, commit messages, log lines,
error reasons, file names) goes through `clean` (the one sanitiser, `text.sanitise`) on its way
out, so no escape sequence reaches a terminal, no token reaches an answer and no bidi override or
zero-width character hides in one. The JSON shapes are a documented, stable contract
(README "Command line"): add keys, never rename or remove them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmkit_tui.domain.eligibility import NOT_CHECKED, RollbackEligibility
from vmkit_tui.domain.models import DeployEvent, DeployRecord, EventKind, to_iso
from vmkit_tui.domain.text import sanitise

if TYPE_CHECKING:  # the checks' modules pull in the GitHub client: only their shapes are needed
    from vmkit_tui.actions.cancel import CancelPreflight, CancelResult
    from vmkit_tui.actions.preflight import Preflight
    from vmkit_tui.store.spool import LogRecord

# Event data keys worth showing in an audit line, in this order.
_EVENT_DATA_KEYS = (
    "actor",
    "trigger",
    "action",
    "strategy",
    "target_sha",
    "request_id",
    "run_id",
    "cause",
    "fix",
)


clean = sanitise  # the CLI's and MCP's name for it: the same function the TUI uses


def _clean_value(value: object) -> object:
    """`clean` through JSON-like data (strings anywhere inside lists and mappings)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {clean(key): _clean_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_value(item) for item in value]
    return value


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_age(delta: timedelta | None) -> str:
    if delta is None:
        return "unknown age"
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment else None


# ---------------------------------------------------------------------------- deploys


def record_json(
    record: DeployRecord, eligibility: RollbackEligibility | None = None
) -> dict[str, Any]:
    """One deploy as the stable JSON of `history --json`, `deploys --json` and the MCP tools;
    `eligibility`: whether a rollback to it would work (None: not checked)."""
    eligibility = eligibility or NOT_CHECKED
    deploy = record.deploy
    duration = record.duration
    diagnosis = record.diagnosis
    run_url = record.run_url
    return {
        "id": deploy.id,
        "repo": deploy.repo,
        "environment": deploy.environment,
        "sha": deploy.sha,
        "status": record.status.value,
        "triggered_by": deploy.triggered_by.value,
        "actor": clean(deploy.actor),
        "run_id": record.run_id,
        "run_url": clean(run_url) if run_url else None,
        "rollback_of": deploy.rollback_of,
        "created_at": to_iso(deploy.created_at),
        "started_at": _iso(record.started_at),
        "first_healthy_at": _iso(record.first_healthy_at),
        "finished_at": _iso(record.finished_at),
        "duration_seconds": duration[0].total_seconds() if duration else None,
        "duration_basis": duration[1].value if duration else None,
        "cancel_requested": record.cancel_requested,
        "diagnosis": _clean_value(diagnosis.to_data()) if diagnosis else None,
        "title": clean(record.title),
        "rollback_eligibility": eligibility.state.value,
        "rollback_eligibility_reason": clean(eligibility.reason),
    }


def event_line(event: DeployEvent, record: DeployRecord) -> str:
    """One audit-trail line for an event, from the recorded facts only."""
    if event.kind is EventKind.CREATED:
        deploy = record.deploy
        what = f"recorded: {deploy.triggered_by.value} by {deploy.actor}"
        if deploy.rollback_of:
            what += f", rollback of deploy {deploy.rollback_of}"
    elif event.kind is EventKind.STATUS and event.status is not None:
        what = f"status → {event.status.value}"
    else:
        what = event.kind.value.replace("_", " ")
    details = [event.detail] if event.detail else []
    details += [
        f"{key}={event.data[key]}"
        for key in _EVENT_DATA_KEYS
        if event.data.get(key) not in (None, "")
    ]
    return clean(" · ".join([what, *details]))


def event_json(event: DeployEvent, record: DeployRecord) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": to_iso(event.at),
        "kind": event.kind.value,
        "status": event.status.value if event.status else None,
        "summary": event_line(event, record),
    }


def status_line(record: DeployRecord) -> str:
    """What `--wait` prints when a deploy's status changes: when, which, what, the last word."""
    last = record.events[-1] if record.events else None
    when = last.at if last else record.deploy.created_at
    detail = f"  {last.detail}" if last and last.detail else ""
    return clean(f"{when:%H:%M:%S} {record.id} {record.status.value}{detail}")


TITLE_WIDTH = 60  # characters of the commit title in a deploys table
DEPLOY_COLUMNS = ("CREATED (UTC)", "ID", "STATUS", "SHA", "TRIGGER", "ACTOR", "TOOK", "TITLE")


def _deploy_cells(record: DeployRecord) -> list[str]:
    deploy, duration = record.deploy, record.duration
    title = clean(record.title).strip() or "-"
    if len(title) > TITLE_WIDTH:
        title = title[: TITLE_WIDTH - 1] + "…"
    if deploy.rollback_of and not title.startswith("Roll back"):
        title += f" (rollback of {deploy.rollback_of})"
    return [
        deploy.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        deploy.id,
        record.status.value,
        deploy.short_sha,
        deploy.triggered_by.value,
        clean(deploy.actor),
        format_duration(duration[0]) if duration else "-",
        title,
    ]


def deploy_table(records: Iterable[DeployRecord]) -> list[str]:
    """Deploys as a table for a terminal: a header row, then one row each, columns aligned
    to their content (the title last, cut at TITLE_WIDTH)."""
    rows = [list(DEPLOY_COLUMNS), *(_deploy_cells(record) for record in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(DEPLOY_COLUMNS) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def history_table(records: Iterable[DeployRecord]) -> Iterator[str]:
    """Deploys grouped per repo and environment, newest first, each group a `deploy_table`."""
    ordered = sorted(records, key=lambda r: (r.deploy.repo, r.deploy.environment))
    any_rows = False
    for (repo, environment), group in groupby(
        ordered, key=lambda r: (r.deploy.repo, r.deploy.environment)
    ):
        if any_rows:
            yield ""
        any_rows = True
        rows = sorted(
            group,
            key=lambda r: (r.deploy.created_at, r.events[-1].seq if r.events else 0),
            reverse=True,
        )
        yield f"{repo} / {environment} ({len(rows)} deploys)"
        yield from ("  " + line for line in deploy_table(rows))
    if not any_rows:
        yield "no deploys recorded yet"


def no_repos_message(source: Path | None, looked_in: Path) -> str:
    """The first-run hint: where a config was looked for, and how to get a ready-to-edit one
    (pip installs have no docs/ folder: the example ships inside the package)."""
    if source is None:
        return (
            f"No config file at {looked_in}. `vmkit-tui config init` writes an example there to "
            "edit (`vmkit-tui config example` prints it); or try `vmkit-tui demo`."
        )
    return (
        f"No repositories in {source}: add a [[repos]] table (`vmkit-tui config example` "
        "prints one), or try `vmkit-tui demo`."
    )


# ---------------------------------------------------------------------------- preflights


def _image_text(check: Preflight) -> str:
    image, state = check.image_check, check.image_check.state.value
    ref = f"{check.image}:{check.target.short_sha}"
    if state == "present":
        return f"{ref} is in GHCR"
    if state == "missing":
        return check.image_gone
    return f"cannot check: {image.reason}"


def preflight_lines(check: Preflight) -> list[str]:
    """The facts the TUI's rollback dialog shows, as plain lines: what, from where, and what to
    know first (✗ refusals, ! warnings)."""
    target = check.target
    lines = [f"Target     {target.short_sha}  {target.sha}"]
    if target.message:
        lines.append(f"Commit     {clean(target.message)[:200]}")
    if target.deploy is not None:
        status = target.status.value if target.status else "unknown"
        lines.append(
            f"Deployed   {format_age(check.target_age)} by {clean(target.deployed_by)} "
            f"({status}, deploy {target.deploy.id})"
        )
    live = check.live_sha
    lines.append(
        f"Live now   {live[:7]}  {live}" if live else "Live now   unknown (no succeeded deploy)"
    )
    lines.append(f"Image      {clean(_image_text(check))}")
    eligibility = check.eligibility
    lines.append(f"Rollback   {eligibility.state.value}: {clean(eligibility.reason)}")
    lines.append(f"Strategy   {check.strategy.value}")
    lines += [f"✗ {clean(blocker.message)}" for blocker in check.blockers]
    lines += [f"! {clean(warning)}" for warning in check.warnings]
    return lines


def preflight_json(check: Preflight) -> dict[str, Any]:
    """The preflight's facts for the MCP answers: target, live, image, migrations, warnings."""
    target, migrations = check.target, check.migrations
    return {
        "repo": check.repo,
        "environment": check.environment,
        "strategy": check.strategy.value,
        "target": {
            "sha": target.sha,
            "deploy_id": target.deploy.id if target.deploy else None,
            "status": target.status.value if target.status else None,
            "commit_message": clean(target.message),
            "commit_found": target.commit_found,
            "deployed_at": _iso(target.deployed_at),
            "deployed_by": clean(target.deployed_by) if target.deployed_by else None,
        },
        "live": {"sha": check.live_sha, "deploy_id": check.live.id} if check.live else None,
        "image": {
            "ref": f"{check.image}:{target.sha}",
            "state": check.image_check.state.value,
            "reason": clean(check.image_check.reason),
        },
        "rollback_eligibility": {
            "state": check.eligibility.state.value,
            "reason": clean(check.eligibility.reason),
            "missing_on": list(check.eligibility.missing_on),
        },
        "migrations": {
            "files": [clean(name) for name in migrations.files],
            "compared": migrations.compared,
            "truncated": migrations.truncated,
            "cannot_check": clean(migrations.cannot_check),
        },
        "active_deploy_id": check.active.id if check.active else None,
        "blockers": [clean(blocker.message) for blocker in check.blockers],
        "warnings": [clean(warning) for warning in check.warnings],
    }


def cancel_lines(check: CancelPreflight) -> list[str]:
    """The facts the TUI's cancel dialog shows, as plain lines."""
    record = check.record
    deploy = record.deploy
    lines = [f"Deploy     {deploy.id}  {deploy.short_sha} on {deploy.environment}"]
    lines[0] += f" ({record.status.value})"
    if record.title:
        lines.append(f"Message    {clean(record.title)[:200]}")
    if check.kamal_step:
        lines.append(f"Step       {clean(check.kamal_step)}")
    if check.refusal:
        lines.append(f"✗ {clean(check.refusal)}")
    lines += [f"! {clean(warning)}" for warning in check.warnings]
    return lines


def cancel_json(result: CancelResult) -> dict[str, Any]:
    """What a cancel did, for the MCP answer (the final state comes later, from tracking)."""
    lock = result.lock
    return {
        "deploy_id": result.record.id,
        "status": result.record.status.value,
        "outcome": result.outcome.value if result.outcome else None,
        "forced": result.forced,
        "message": clean(result.message),
        "warnings": [clean(warning) for warning in result.warnings],
        "lock": (
            {
                "held": lock.held,
                "message": clean(lock.message),
                "details": [clean(line) for line in lock.details],
            }
            if lock
            else None
        ),
        "force_cancel_after": _iso(result.force_after),
    }


# ---------------------------------------------------------------------------- logs


def log_line(record: LogRecord) -> str:
    """`2026-05-01 10:00:00Z github[deploy] text`: when, source[host or job], the line."""
    return (
        f"{record.at:%Y-%m-%d %H:%M:%S}Z {clean(record.source)}[{clean(record.host)}] "
        f"{clean(record.text)}"
    )


def log_json(index: int, record: LogRecord, max_chars: int) -> dict[str, Any]:
    """One spool line for an MCP answer; a very long line is cut, and says so."""
    text = clean(record.text)
    if len(text) > max_chars:
        text = f"{text[:max_chars]}… [{len(text) - max_chars} more characters]"
    return {
        "index": index,
        "at": to_iso(record.at),
        "source": clean(record.source),
        "host": clean(record.host),
        "text": text,
    }
