"""Deploy tracking when GitHub misbehaves (injected by the sandbox over real HTTP): every fault
is reported as a clear SourceHealth, the watcher keeps going, recovers, and records the run;
no token means read-only with advice; the token never leaks anywhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.tracking_fixtures import REPO, health_is, make_config, record_of, tracking
from tests.integration.vm_helpers import wait_until
from vmkit_tui.domain.models import Status
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth
from vmkit_tui.sandbox.servers.faults import Fault, FaultPlan, RecordedRequest
from vmkit_tui.sandbox.servers.github_server import SANDBOX_TOKEN, GitHubSandbox
from vmkit_tui.sandbox.world.clock import ManualClock
from vmkit_tui.sandbox.world.world import World
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History

pytest_plugins = ["tests.integration.sandbox_fixtures"]

RUNS = "*/actions/workflows/*/runs"
AUTH = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
WRONG_TOKEN = "ghp_" + "Wr0ngT0ken" * 4

# name → (arm the fault, the health it shows, words of the message, how many reports)
FAULTS: dict[str, tuple[Callable[[FaultPlan], Fault], Health, tuple[str, ...], int]] = {
    "5xx burst": (
        lambda plan: plan.server_errors(6, status=502, path=RUNS),
        Health.UNREACHABLE,
        ("GitHub is unreachable", "502 after 4 attempts", "retrying in"),
        1,
    ),
    "403 secondary limit, retry-after": (
        lambda plan: plan.secondary_rate_limit(1, retry_after=60, path=RUNS),
        Health.RATE_LIMITED,
        ("secondary rate limit", "polling resumes at", "(in 60 s)"),
        1,
    ),
    "403 secondary limit, no retry-after (twice)": (
        lambda plan: plan.secondary_rate_limit(2, retry_after=None, path=RUNS),
        Health.RATE_LIMITED,
        ("secondary rate limit", "polling resumes at"),
        2,  # 60 s waited by the client, then 120 s (too long for it) by the watcher
    ),
    "429": (
        lambda plan: plan.too_many_requests(1, retry_after=30, path=RUNS),
        Health.RATE_LIMITED,
        ("rate limit", "(in 30 s)"),
        1,
    ),
    "dropped connection": (
        lambda plan: plan.drop_connection(5, path=RUNS),
        Health.UNREACHABLE,
        ("GitHub is unreachable", "no answer after 4 attempts", "retrying in"),
        1,
    ),
    "malformed JSON": (
        lambda plan: plan.malformed_json(1, path=RUNS),
        Health.ERROR,
        ("cannot read", "malformed JSON", "retrying in"),
        1,
    ),
}


@pytest.mark.parametrize("name", FAULTS)
async def test_each_fault_is_reported_survived_and_the_run_still_recorded(
    name: str, world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    arm, health, words, reports = FAULTS[name]
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        first_ok = await updates.wait(health_is(Health.OK))
        fault = arm(sandbox.faults)
        run = world.push(REPO, "production", "success")
        bad = await updates.wait(health_is(health), after=first_ok)
        assert isinstance(bad, SourceHealth)
        for word in words:
            assert word in bad.message, bad.message
        if health is Health.RATE_LIMITED:
            assert bad.until is not None and f"resumes at {bad.until:%H:%M:%S} UTC" in bad.message
        await updates.wait(health_is(Health.OK), after=bad)
        done = await updates.wait(record_of(run.id, lambda r: r.status is Status.SUCCEEDED))
        assert isinstance(done, DeployChanged)
        assert fault.exhausted  # every injected failure was met
    problems = [u for u in updates.of(SourceHealth) if u.health is not Health.OK]
    assert [u.health for u in problems] == [health] * reports


async def test_a_limit_longer_than_the_client_waits_is_waited_out_by_the_watcher(
    world: World, sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        first_ok = await updates.wait(health_is(Health.OK))
        sandbox.faults.secondary_rate_limit(1, retry_after=600, path=RUNS)
        run = world.push(REPO, "production", "success")
        limited = await updates.wait(health_is(Health.RATE_LIMITED), after=first_ok)
        assert isinstance(limited, SourceHealth) and limited.until is not None
        assert "(in 600 s)" in limited.message
        ok = await updates.wait(health_is(Health.OK), after=limited)
        await updates.wait(record_of(run.id))
    limit = next(r for r in sandbox.requests if r.fault is not None)
    assert limit.at is not None
    later = [r.at for r in sandbox.requests if r.at is not None and r.at > limit.at]
    assert later and min(later) >= limited.until  # nothing was sent while limited
    assert updates.index(ok) > updates.index(limited)


async def test_without_a_token_the_service_is_read_only_and_says_how_to_provide_one(
    sandbox: GitHubSandbox, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `gh` to ask either
    config = make_config(sandbox.base_url, ("production", "staging"), token=None)
    service = DeployService(config, AsyncHistory(History(tmp_path / "h.json")), tmp_path)
    async with service:
        health = sorted(service.health(), key=lambda h: h.environment)
        assert [(h.environment, h.health) for h in health] == [
            ("production", Health.AUTH),
            ("staging", Health.AUTH),
        ]
        assert "GH_ENTERPRISE_TOKEN" in health[0].message
        assert "gh auth login --hostname 127.0.0.1" in health[0].message
        overview = await service.overview()  # the history still reads
        assert overview.environments == {REPO: ["production", "staging"]}
    assert sandbox.requests == []

    plain_http = make_config("http://example.com", ("production",))  # refused by the client
    refused = DeployService(plain_http, AsyncHistory(History(tmp_path / "h.json")), tmp_path)
    async with refused:
        [problem] = refused.health()
        assert problem.health is Health.ERROR and "must use https" in problem.message


async def test_the_token_never_reaches_logs_updates_messages_or_files(
    world: World,
    sandbox: GitHubSandbox,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with tracking(sandbox, clock, tmp_path) as (_service, updates):
        first_ok = await updates.wait(health_is(Health.OK))
        sandbox.faults.server_errors(6, path=RUNS)
        sandbox.faults.malformed_json(1, path="*/jobs")
        run = world.push(REPO, "production", "ghcr_push_denied")
        await updates.wait(record_of(run.id, lambda r: r.diagnosis is not None), after=first_ok)
    async with tracking(sandbox, clock, tmp_path / "wrong", token=WRONG_TOKEN) as (_s, refused):
        auth = await refused.wait(health_is(Health.AUTH))
        assert isinstance(auth, SourceHealth) and "token is invalid or expired" in auth.message
    published = [repr(u) for u in [*updates.seen, *refused.seen]]
    assert any("Health.UNREACHABLE" in text for text in published)  # the faults were met
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "history.json" for path in files)
    assert any(path.suffix == ".log" for path in files)
    for token in (SANDBOX_TOKEN, WRONG_TOKEN):
        assert token not in caplog.text
        assert not [text for text in published if token in text]
        assert not [path for path in files if token.encode() in path.read_bytes()]


async def test_a_budget_running_low_stretches_polling_to_its_reset_instead_of_exhausting_it(
    world: World, clock: ManualClock, tmp_path: Path
) -> None:
    server = GitHubSandbox(world, rate_limit=10)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as api:
            # someone else spends 7 of the 10; the rollback-eligibility refresh's one GHCR
            # listing at start takes one more
            for page in range(1, 8):
                assert (await api.get(f"/repos/{REPO}/actions/runs?page={page}")).status_code == 200
        reset = clock.now() + timedelta(hours=1)
        async with tracking(server, clock, tmp_path) as (_service, updates):
            # the first round spent the two left: the shared look and its own list
            await updates.wait(health_is(Health.OK))
            await wait_until(lambda: len(polls(server)) >= 3, timeout=20)
    finally:
        await server.stop()
    look, own, after = polls(server)[:3]
    packages = [r for r in server.requests if "/packages/container/" in r.path]
    assert len(packages) == 1 and packages[0].counted
    assert all(r.status == 200 and r.counted for r in (look, own))
    assert after.at is not None and after.at >= reset  # none left: wait for the new hour
    assert "branch=" not in look.query and "branch=" in own.query
    assert all(r.status == 304 for r in polls(server)[2:])  # then free: nothing changed
    assert all(r.status in (200, 304) for r in server.requests)  # never limited


def polls(server: GitHubSandbox) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/workflows/deploy.yml/runs")]
