"""Typed GitHub results: validated, ISO-8601 in every form GitHub uses, unknown fields ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.domain.models import Status, ValidationError
from vmkit_tui.sources.github.results import (
    CompareResult,
    DispatchResult,
    Job,
    RateLimit,
    WorkflowRun,
)

SHA = "3a6235b56eecc0e193c1e267b064c155c6ebc022"

RUN = {  # PyGithub Workflow.testGetRunsWithHeadSha (trimmed), plus fields we ignore
    "id": 3349872717,
    "name": "CI",
    "node_id": "WFR_kwLOADYVqs7HqwBN",
    "head_branch": "master",
    "head_sha": SHA,
    "path": ".github/workflows/ci.yml",
    "display_title": "deploy 3a6235b [req-7f3a9c2e]",
    "run_number": 837,
    "run_attempt": 1,
    "event": "push",
    "status": "completed",
    "conclusion": "success",
    "workflow_id": 1903133,
    "html_url": "https://github.com/PyGithub/PyGithub/actions/runs/3349872717",
    "pull_requests": [],
    "created_at": "2022-10-29T03:26:27Z",
    "updated_at": "2022-10-29T03:29:02Z",
    "run_started_at": "2022-10-29T03:26:27Z",
    "actor": {"login": "octocat", "id": 1, "type": "User"},
    "repository": {"id": 3544490, "full_name": "PyGithub/PyGithub"},
    "a_field_from_the_future": {"x": 1},
}

JOB = {  # PyGithub WorkflowJob.setUp (trimmed)
    "id": 11421878319,
    "run_id": 4205440316,
    "head_sha": "06ec040b2eeef6c0316dd5abcda0608525a3f205",
    "html_url": "https://github.com/PyGithub/PyGithub/actions/runs/4205440316/jobs/7297536068",
    "status": "completed",
    "conclusion": "success",
    "started_at": "2023-02-17T16:03:46Z",
    "completed_at": "2023-02-17T16:04:52Z",
    "name": "test (Python 3.7)",
    "steps": [
        {
            "name": "Post checkout",
            "status": "completed",
            "conclusion": "success",
            "number": 16,
            "started_at": "2023-01-10T08:24:27.000Z",
            "completed_at": None,
        },
        {
            "name": "Set up job",
            "status": "completed",
            "conclusion": "success",
            "number": 1,
            "started_at": "2023-02-17T17:03:46.000+01:00",
            "completed_at": "2023-02-17T17:03:49.000+01:00",
        },
    ],
    "labels": ["ubuntu-latest"],
}


def test_run_parses_and_ignores_unknown_fields() -> None:
    run = WorkflowRun.from_api(RUN)
    assert (run.id, run.run_number, run.head_sha, run.actor) == (3349872717, 837, SHA, "octocat")
    assert run.created_at == datetime(2022, 10, 29, 3, 26, 27, tzinfo=UTC)
    assert run.is_completed and run.deploy_status is Status.SUCCEEDED


@pytest.mark.parametrize(
    ("status", "conclusion", "expected"),
    [
        ("queued", None, Status.PENDING),
        ("waiting", None, Status.PENDING),
        ("in_progress", None, Status.RUNNING),
        ("completed", "failure", Status.FAILED),
        ("completed", "timed_out", Status.FAILED),
        ("completed", "cancelled", Status.CANCELLED),
    ],
)
def test_run_deploy_status(status: str, conclusion: str | None, expected: Status) -> None:
    run = WorkflowRun.from_api({**RUN, "status": status, "conclusion": conclusion})
    assert run.deploy_status is expected


@pytest.mark.parametrize("bad_sha", ["3a6235b", SHA.upper(), SHA + "\n", "", None])
def test_run_rejects_a_bad_head_sha(bad_sha: object) -> None:
    with pytest.raises(ValidationError):
        WorkflowRun.from_api({**RUN, "head_sha": bad_sha})


@pytest.mark.parametrize(("key", "value"), [("id", "3349872717"), ("id", True), ("event", None)])
def test_run_rejects_wrong_types(key: str, value: object) -> None:
    with pytest.raises((TypeError, KeyError)):
        WorkflowRun.from_api({**RUN, key: value})


def test_job_steps_sorted_by_number_and_mixed_time_forms() -> None:
    job = Job.from_api(JOB)
    assert [step.number for step in job.steps] == [1, 16]
    set_up = job.steps[0]
    assert set_up.started_at == datetime(2023, 2, 17, 16, 3, 46, tzinfo=UTC)
    assert set_up.started_at.utcoffset() == timedelta(0)
    assert job.steps[1].completed_at is None
    assert job.is_completed


def test_job_without_steps_yet() -> None:
    job = Job.from_api({**JOB, "status": "queued", "steps": [], "completed_at": None})
    assert job.steps == () and not job.is_completed


def test_compare_lists_files_and_flags_truncation() -> None:
    commit = {
        "sha": SHA,
        "commit": {
            "message": "Add column",
            "author": {"name": "Jane", "date": "2026-05-01T10:00:00Z"},
        },
        "author": {"login": "jane"},
    }
    data = {
        "status": "ahead",
        "ahead_by": 1,
        "behind_by": 0,
        "total_commits": 1,
        "commits": [commit],
        "files": [{"filename": "db/migrate/0042_add_col.rb", "status": "added"}],
    }
    result = CompareResult.from_api(data)
    assert result.files == ("db/migrate/0042_add_col.rb",) and not result.files_truncated
    assert result.commits[0].author_login == "jane" and result.commits[0].message == "Add column"
    many = CompareResult.from_api({**data, "files": [{"filename": f"f{i}"} for i in range(300)]})
    assert many.files_truncated


def test_dispatch_result_from_run_details() -> None:
    result = DispatchResult.from_api(
        {
            "workflow_run_id": 123,
            "run_url": "https://api.github.com/repos/o/r/actions/runs/123",
            "html_url": "https://github.com/o/r/actions/runs/123",
        }
    )
    assert result.run_id == 123 and result.html_url.endswith("/123")


def test_rate_limit_from_body_and_headers() -> None:
    body = {
        "resources": {"core": {"limit": 5000, "remaining": 4990, "reset": 1780000000, "used": 10}},
        "rate": {"limit": 1},
    }
    limit = RateLimit.from_api(body)
    assert (limit.limit, limit.remaining, limit.used) == (5000, 4990, 10)
    assert limit.reset == datetime.fromtimestamp(1780000000, UTC)
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1780000000",
        "x-ratelimit-resource": "core",
    }
    assert RateLimit.from_headers(headers).remaining == 0
    assert RateLimit.from_headers({}) is None  # GHES: rate limits disabled


def test_times_are_utc_whatever_the_offset() -> None:
    run = WorkflowRun.from_api({**RUN, "updated_at": "2022-10-29T05:29:02.000+02:00"})
    assert run.updated_at == datetime(2022, 10, 29, 3, 29, 2, tzinfo=UTC)
    assert run.updated_at.tzinfo == UTC
