"""Diagnosis agrees with the sandbox world: every failed job of every scenario is pinpointed,
and no successful or cancelled job gets a diagnosis (pure: the world's logs, no sockets)."""

from __future__ import annotations

from vmkit_tui.sandbox.world.world import World
from vmkit_tui.sources.github.job_log import parse_job_log
from vmkit_tui.tracking.diagnose import diagnose

EXPECTED_CAUSE = {
    "buildpack_no_procfile": "Buildpack detection failed: the app has no Procfile",
    "ghcr_push_denied": "Image push to GHCR was denied",
    "health_timeout": "Health check timed out: the app listens on 127.0.0.1",
    "ssh_unreachable": "Kamal could not connect to the VM over SSH",
    "ssh_auth_failed": "The VM refused Kamal's SSH key",
    "lock_held": "Another deploy holds Kamal's deploy lock",
    "image_gone": "The image for this commit is no longer in GHCR",
}


def test_every_world_job_log_is_diagnosed_as_its_scenario() -> None:
    world = World.seeded(7)
    diagnosed: set[str] = set()
    clean_jobs = 0
    for run in world.runs():
        if world.run_status(run).status != "completed":
            continue
        for job in world.jobs(run):
            text = world.job_log(job.id)
            if text is None:  # never ran (the build before it failed)
                assert job.conclusion != "failure"
                continue
            found = diagnose(list(parse_job_log(text).lines))
            if job.conclusion == "failure":
                assert found is not None, (run.scenario, job.name)
                assert found.cause.startswith(EXPECTED_CAUSE[run.scenario]), found.cause
                diagnosed.add(run.scenario)
            else:
                assert found is None, (run.scenario, job.name, job.conclusion, found)
                clean_jobs += 1
    assert diagnosed == set(EXPECTED_CAUSE)
    assert clean_jobs > 100
