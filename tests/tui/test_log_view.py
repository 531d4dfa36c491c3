"""Which spool lines the log pane shows: source filters and folded ##[group] sections."""

from __future__ import annotations

from datetime import UTC, datetime

from vmkit_tui.frontends.tui.log_pane import view_filter
from vmkit_tui.store.spool import LogRecord

AT = datetime(2026, 11, 27, tzinfo=UTC)
LINES = [
    LogRecord(AT, "build", "github", "##[group]Run pack build"),
    LogRecord(AT, "build", "github", "===> DETECTING"),
    LogRecord(AT, "203.0.113.10", "kamal-proxy", '{"msg":"Deploying"}'),
    LogRecord(AT, "build", "github", "##[endgroup]"),
    LogRecord(AT, "build", "github", "##[error]Process completed with exit code 1."),
    LogRecord(AT, "203.0.113.10", "vmkit-agent", "container healthy"),
]


def shown(keep: object) -> list[str]:
    assert callable(keep)
    return [line.text for line in LINES if keep(line)]


def test_everything_without_a_view() -> None:
    assert view_filter(None, False) is None


def test_one_source() -> None:
    assert shown(view_filter("kamal-proxy", False)) == ['{"msg":"Deploying"}']
    assert shown(view_filter("github", False)) == [
        LINES[0].text,
        LINES[1].text,
        LINES[3].text,
        LINES[4].text,
    ]


def test_folded_groups_keep_their_header_and_other_sources() -> None:
    assert shown(view_filter(None, True)) == [
        "##[group]Run pack build",
        '{"msg":"Deploying"}',  # VM lines are never folded away
        "##[error]Process completed with exit code 1.",
        "container healthy",
    ]


def test_folded_and_one_source() -> None:
    assert shown(view_filter("github", True)) == [
        "##[group]Run pack build",
        "##[error]Process completed with exit code 1.",
    ]
