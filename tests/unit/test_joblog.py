"""Parsing GitHub job log text: BOM, 7-digit timestamps, folds, markers, orphan lines."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.unit import logsamples as s
from vmkit_tui.sources.github.job_log import LineKind, parse_job_log, parse_timestamp

REAL = (
    "\ufeff2025-04-07T12:57:33.2904078Z Current runner version: '2.323.0'\n"
    "2025-04-07T12:57:33.2943173Z ##[group]Operating System\n"
    "2025-04-07T12:57:33.2944239Z Microsoft Windows Server 2022\n"
    "2025-04-07T12:57:33.2960000Z ##[endgroup]\n"
    "2026-07-08T08:53:00.2027314Z ##[group]Run npm run test\n"
    "2026-07-08T08:53:00.2027881Z npm run test\n"
    "2026-07-08T08:53:00.2060769Z shell: /usr/bin/bash -e {0}\n"
    "2026-07-08T08:53:00.2061046Z ##[endgroup]\n"
    "2026-06-11T13:07:12.1194171Z ##[error]Error: pod failed to come online ...\n"
    "2026-06-11T13:07:12.1261539Z ##[error]Process completed with exit code 1.\n"
)


def test_bom_timestamps_and_text() -> None:
    log = parse_job_log(REAL)
    first = log.lines[0]
    assert first.text == "Current runner version: '2.323.0'"
    assert first.timestamp == datetime(2025, 4, 7, 12, 57, 33, 290407, tzinfo=UTC)
    assert [line.number for line in log.lines] == list(range(1, 11))
    assert not any(line.continued for line in log.lines)


def test_groups_fold_their_lines() -> None:
    log = parse_job_log(REAL)
    assert [(g.title, g.start, g.end) for g in log.groups] == [
        ("Operating System", 1, 3),
        ("Run npm run test", 4, 7),
    ]
    assert [g.is_step_header for g in log.groups] == [False, True]
    assert log.lines[2].group == 0 and log.lines[5].group == 1
    assert log.lines[8].group is None
    assert log.lines[1].kind is LineKind.GROUP and log.lines[1].message == "Operating System"


def test_error_and_warning_markers() -> None:
    text = REAL + "2026-06-11T13:07:13.0000000Z ##[warning]Node.js 16 actions are deprecated.\n"
    log = parse_job_log(text)
    assert [e.message for e in log.errors] == [
        "Error: pod failed to come online ...",
        "Process completed with exit code 1.",
    ]
    assert [w.message for w in log.warnings] == ["Node.js 16 actions are deprecated."]
    assert log.errors[0].text.startswith("##[error]")  # the raw text is kept


def test_lines_without_timestamp_continue_the_previous_entry() -> None:
    text = (
        "2026-01-02T03:04:05.1234567Z Traceback (most recent call last):\n"
        '  File "app.py", line 3\n'
        "ValueError: boom\r\n"
        "2026-01-02T03:04:06.0000000Z next\n"
    )
    log = parse_job_log(text)
    assert [line.text for line in log.lines] == [
        "Traceback (most recent call last):",
        '  File "app.py", line 3',
        "ValueError: boom",
        "next",
    ]
    assert [line.continued for line in log.lines] == [False, True, True, False]
    assert log.lines[2].timestamp == log.lines[0].timestamp


def test_a_new_group_closes_an_unterminated_one_and_the_end_closes_the_last() -> None:
    text = "##[group]A\na1\n##[group]B\nb1\nb2\n"
    log = parse_job_log(text)
    assert [(g.title, g.start, g.end) for g in log.groups] == [("A", 0, 1), ("B", 2, 4)]
    assert log.lines[0].timestamp is None


def test_stray_endgroup_is_just_a_marker() -> None:
    log = parse_job_log("##[endgroup]\nplain\n")
    assert log.groups == () and log.lines[0].kind is LineKind.ENDGROUP


def test_remote_text_is_kept_raw() -> None:
    hostile = "[bold]x[/] [@click=app.quit]y \x1b]52;c;aGk=\x07 \x1b[31mred\x1b[0m"
    log = parse_job_log(f"2026-01-02T03:04:05.1234567Z {hostile}\n")
    assert log.lines[0].text == hostile


def test_timestamp_like_garbage_is_text() -> None:
    assert parse_timestamp("2025-13-45T99:99:99.1234567Z boom") == (
        None,
        "2025-13-45T99:99:99.1234567Z boom",
    )
    moment, rest = parse_timestamp("2025-04-07T12:57:33Z no fraction")
    assert moment == datetime(2025, 4, 7, 12, 57, 33, tzinfo=UTC) and rest == "no fraction"


def test_a_whole_sample_log_parses_with_steps_and_cleanup() -> None:
    log = parse_job_log(s.BUILDPACK_DETECT_FAILED)
    steps = [g.title for g in log.groups if g.is_step_header]
    assert steps[0] == "Run actions/checkout@v4" and steps[1].startswith("Run pack build")
    assert log.errors[-1].message == "Process completed with exit code 1."
    assert log.lines[-1].text == "Cleaning up orphan processes"
    assert all(line.timestamp is not None for line in log.lines)
