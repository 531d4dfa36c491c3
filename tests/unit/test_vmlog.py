"""kamal-proxy and vmkit-agent lines → typed events → the deploy's first-healthy moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vmkit_tui.sources.kamal import proxy_deploy_target
from vmkit_tui.sources.ssh.vm_log import (
    HealthWatch,
    VmEventKind,
    first_healthy,
    parse_agent_line,
    parse_proxy_line,
    parse_record,
    parse_records,
)
from vmkit_tui.store.spool import LogRecord

SHA = "9f2c1ab4e0d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0"
OLD = "3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
CONTAINER = f"web-web-production-{SHA}"


def proxy(msg: str, seconds: float, **fields: object) -> str:
    moment = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": moment, "level": "INFO", "msg": msg, **fields})


def rec(source: str, text: str, seconds: float = 0.0, host: str = "vm1") -> LogRecord:
    return LogRecord(T0 + timedelta(seconds=seconds), host, source, text)


def test_proxy_deploy_lines_become_events_with_the_lines_own_time() -> None:
    arrival = T0 + timedelta(hours=1)
    deploying = parse_proxy_line(
        proxy("Deploying", 1.5, service="web-web-production", targets=["ad9e1df96129:3000"]),
        arrival,
        "vm1",
    )
    assert deploying is not None
    assert deploying.kind is VmEventKind.DEPLOYING
    assert deploying.at == T0 + timedelta(seconds=1.5)  # the proxy's time, not arrival
    assert (deploying.service, deploying.target, deploying.host) == (
        "web-web-production",
        "ad9e1df96129:3000",
        "vm1",
    )
    healthy = parse_proxy_line(
        proxy(
            "Target health updated", 4, target="ad9e1df96129:3000", state="healthy", was="adding"
        ),
        arrival,
    )
    assert healthy is not None and healthy.kind is VmEventKind.TARGET_HEALTHY
    assert healthy.detail == "was adding"
    unhealthy = parse_proxy_line(
        proxy("Target health updated", 9, target="x:3000", state="unhealthy", was="healthy"),
        arrival,
    )
    assert unhealthy is not None and unhealthy.kind is VmEventKind.TARGET_UNHEALTHY
    check = parse_proxy_line(
        proxy("Healthcheck failed", 2, url="http://ad9e:3000/up", error="connection refused"),
        arrival,
    )
    assert check is not None and check.kind is VmEventKind.HEALTHCHECK_FAILED
    assert (check.detail, check.target) == ("connection refused", "http://ad9e:3000/up")
    deployed = parse_proxy_line(proxy("Deployed", 6, service="web", target="x:3000"), arrival)
    assert deployed is not None and deployed.kind is VmEventKind.DEPLOYED


@pytest.mark.parametrize(
    "line",
    [
        proxy("Target failed to become healthy", 31, target="ad9e:3000"),
        proxy(
            "Target failed to become healthy",
            31,
            error="target failed to become healthy within configured timeout (30s)",
        ),
        "Error: target failed to become healthy within configured timeout (30s)",
        "docker stderr: Error: target failed to become healthy within configured timeout (30s)",
    ],
)
def test_health_timeouts_are_deploy_failures(line: str) -> None:
    event = parse_proxy_line(line, T0)
    assert event is not None and event.kind is VmEventKind.DEPLOY_FAILED
    assert event.line == line


@pytest.mark.parametrize(
    "line",
    [
        proxy("Request", 1, path="/up", status=200, user_agent="kamal-proxy"),
        proxy("Service drained", 1),
        '{"msg":"Deploying", broken json',
        "[1, 2, 3]",
        '["Deploying"]',
        "plain text mentioning health",
        "",
        '{"msg": "Target health updated", "state": "adding", "was": "draining"}',
    ],
)
def test_proxy_noise_and_garbage_yield_nothing(line: str) -> None:
    assert parse_proxy_line(line, T0) is None


def test_proxy_line_without_a_usable_time_keeps_the_arrival_time() -> None:
    for time_value in ("yesterday", None, "2026-05-01T10:00:00"):
        line = json.dumps({"time": time_value, "msg": "Deployed", "target": "x"})
        event = parse_proxy_line(line, T0)
        assert event is not None and event.at == T0


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (
            f"new container {CONTAINER} is healthy: GET /up 200 in 7ms",
            VmEventKind.CONTAINER_HEALTHY,
        ),
        (
            f"traffic flowing to {CONTAINER}: 120 requests in 5s, 0 errors",
            VmEventKind.TRAFFIC_FLOWING,
        ),
        (
            f"new container {CONTAINER} never became healthy within 30s; traffic stays on x",
            VmEventKind.AGENT_ERROR,
        ),
        (f'container unhealthy container={CONTAINER} error="GET /up 500"', VmEventKind.AGENT_ERROR),
        (f"container healthy container={CONTAINER} sha={SHA}", VmEventKind.CONTAINER_HEALTHY),
        (json.dumps({"msg": "container healthy", "sha": SHA}), VmEventKind.CONTAINER_HEALTHY),
        (f"check failed level=error container={CONTAINER}", VmEventKind.AGENT_ERROR),
    ],
)
def test_agent_lines(line: str, kind: VmEventKind) -> None:
    event = parse_agent_line(line, T0, "vm2")
    assert event is not None and event.kind is kind
    assert event.sha == SHA and event.host == "vm2" and event.line == line


@pytest.mark.parametrize(
    "line",
    [
        f"heartbeat: {CONTAINER} healthy, serving traffic: 300 req/min, p95 40ms",
        f"container {CONTAINER} stopped (kept for rollback)",
        "",
        "[@click=app.quit]x \x1b]52;c;aGk=\x07",
    ],
)
def test_agent_lines_about_nothing_deploy_related_yield_nothing(line: str) -> None:
    assert parse_agent_line(line, T0) is None


def test_the_agent_naming_a_new_container_ties_its_docker_id_to_its_version() -> None:
    event = parse_agent_line(f"watching new container {CONTAINER} (ad9e1df96129ff00)", T0, "vm1")
    assert event is not None and event.kind is VmEventKind.CONTAINER_STARTED
    assert (event.target, event.container_id, event.sha) == (CONTAINER, "ad9e1df96129", SHA)


def test_agent_error_detail_comes_from_the_error_field() -> None:
    event = parse_agent_line(f'container unhealthy sha={SHA} error="GET /up \\"500\\""', T0)
    assert event is not None
    assert event.detail == 'GET /up "500"'


def test_parse_record_dispatches_on_source() -> None:
    deployed = proxy("Deployed", 1, target="x:3000")
    assert parse_record(rec("kamal-proxy", deployed)) is not None
    assert parse_record(rec("app", deployed)) is None  # the app's own output is not the proxy's
    healthy = f"new container {CONTAINER} is healthy"
    assert parse_record(rec("vmkit-agent", healthy)) is not None
    assert (
        len(
            parse_records(
                [rec("kamal-proxy", deployed), rec("app", "x"), rec("vmkit-agent", healthy)]
            )
        )
        == 2
    )


def deploy_story(healthy_at: float) -> list[LogRecord]:
    """A realistic proxy + agent sequence, with an old target flapping for good measure."""
    return [
        rec("vmkit-agent", f"watching new container {CONTAINER} (5e1f0c2b9a77)", 0.9),
        rec("kamal-proxy", proxy("Target health updated", 0.5, target="old:3000", state="healthy", was="unhealthy")),
        rec("kamal-proxy", proxy("Deploying", 1, service="web", targets=["5e1f0c2b9a77:3000"])),
        rec("kamal-proxy", proxy("Healthcheck failed", 2, url="http://5e1f0c2b9a77:3000/up", error="refused")),
        rec("kamal-proxy", proxy("Target health updated", healthy_at, target="5e1f0c2b9a77:3000", state="healthy", was="adding")),
        rec("vmkit-agent", f"new container {CONTAINER} is healthy: GET /up 200", healthy_at + 0.4),
        rec("kamal-proxy", proxy("Deployed", healthy_at + 2, service="web", targets=["5e1f0c2b9a77:3000"])),
    ]  # fmt: skip


def test_first_healthy_is_the_proxy_marking_the_deployed_target_healthy() -> None:
    events = parse_records(deploy_story(healthy_at=4.25))
    assert first_healthy(events, sha=SHA, since=T0) == T0 + timedelta(seconds=4.25)
    assert first_healthy(reversed(events), sha=SHA, since=T0) == T0 + timedelta(seconds=4.25)
    assert first_healthy(events, sha=OLD, since=T0) is None  # not OLD's container


def test_health_watch_reports_the_moment_once_and_ignores_older_events() -> None:
    watch = HealthWatch(SHA, since=T0 + timedelta(seconds=0.8))
    reported = [watch.feed(event) for event in parse_records(deploy_story(healthy_at=3))]
    assert [r.at for r in reported if r is not None] == [T0 + timedelta(seconds=3)]
    assert watch.first_healthy == T0 + timedelta(seconds=3)
    assert watch.failure is None


def test_without_proxy_logs_the_agent_line_for_this_sha_counts() -> None:
    other = f"new container web-web-production-{OLD} is healthy"
    ours = f"new container {CONTAINER} is healthy"
    events = parse_records([rec("vmkit-agent", other, 1), rec("vmkit-agent", ours, 2)])
    assert first_healthy(events, sha=SHA) == T0 + timedelta(seconds=2)
    assert first_healthy(events, sha=OLD) == T0 + timedelta(seconds=1)


def test_a_failed_deploy_has_no_healthy_moment_and_records_the_failure() -> None:
    lines = [
        rec("vmkit-agent", f"watching new container {CONTAINER} (5e1f0c2b9a77)", 0.5),
        rec("kamal-proxy", proxy("Deploying", 1, targets=["5e1f0c2b9a77:3000"])),
        rec("kamal-proxy", proxy("Healthcheck failed", 2, error="connection refused")),
        rec(
            "kamal-proxy", proxy("Target failed to become healthy", 31, target="5e1f0c2b9a77:3000")
        ),
        rec("vmkit-agent", f"new container {CONTAINER} never became healthy within 30s", 31.5),
    ]
    watch = HealthWatch(SHA, since=T0)
    for event in parse_records(lines):
        watch.feed(event)
    assert watch.first_healthy is None
    assert watch.failure is not None and watch.failure.kind is VmEventKind.DEPLOY_FAILED


def test_proxy_summary_reads_like_a_log_line() -> None:
    from vmkit_tui.sources.ssh.vm_log import proxy_summary

    line = '{"time":"2026-11-27T09:58:50Z","level":"INFO","msg":"Deploying","service":"web","target":"web-1:3000"}'
    assert proxy_summary(line) == "INFO Deploying service=web target=web-1:3000"
    assert proxy_summary("plain text [/]") == "plain text [/]"
    assert proxy_summary('{"broken"') == '{"broken"'
    assert proxy_summary('["a list"]') == '["a list"]'


def old_proxy_story(healthy_at: float, *, deploying: bool) -> list[LogRecord]:
    """kamal-proxy before March 2025: `Target health updated` after every check, with `success`
    and no `was`; the live old target keeps logging passing checks all along."""
    new = "5e1f0c2b9a77:3000"
    lines = [
        rec("vmkit-agent", f"watching new container {CONTAINER} (5e1f0c2b9a77)", 0.9),
        rec("kamal-proxy", proxy("Target health updated", 0.6, target="0a1b2c3d4e5f:3000", success=True, state="healthy")),
        rec("kamal-proxy", proxy("Deploying", 1, service="web", hosts=["shop.example"], target=new, tls=True)),
        rec("kamal-proxy", proxy("Target health updated", 2, target=new, success=False, state="adding")),
        rec("kamal-proxy", proxy("Target health updated", 2.5, target="0a1b2c3d4e5f:3000", success=True, state="healthy")),
        rec("kamal-proxy", proxy("Target health updated", healthy_at, target=new, success=True, state="healthy")),
        rec("kamal-proxy", proxy("Target health updated", healthy_at + 1, target=new, success=True, state="healthy")),
        rec("kamal-proxy", proxy("Target health updated", healthy_at + 2, target=new, success=False, state="healthy")),
    ]  # fmt: skip
    return lines if deploying else [line for line in lines if '"Deploying"' not in line.text]


@pytest.mark.parametrize("deploying", [True, False])
def test_first_healthy_from_the_older_proxy_format(deploying: bool) -> None:
    events = parse_records(old_proxy_story(healthy_at=3.5, deploying=deploying))
    assert first_healthy(events, sha=SHA, since=T0) == T0 + timedelta(seconds=3.5)
    assert first_healthy(events, sha=OLD, since=T0) is None  # the old target is nobody's here


def test_older_proxy_format_failing_checks_are_not_healthy() -> None:
    line = proxy(
        "Target health updated", 2, target="5e1f0c2b9a77:3000", success=False, state="healthy"
    )
    assert parse_proxy_line(line, T0) is None
    adding = proxy(
        "Target health updated", 2, target="5e1f0c2b9a77:3000", success=False, state="adding"
    )
    assert parse_proxy_line(adding, T0) is None


def test_newer_proxy_format_without_the_deploying_line() -> None:
    story = [r for r in deploy_story(healthy_at=4.25) if '"Deploying"' not in r.text]
    assert first_healthy(parse_records(story), sha=SHA, since=T0) == T0 + timedelta(seconds=4.25)


def test_a_healthy_target_of_another_version_never_counts() -> None:
    # The agent ties the target to OLD: its passing checks are not this deploy's moment.
    story = [
        rec("vmkit-agent", f"watching new container web-web-production-{OLD} (5e1f0c2b9a77)", 0.5),
        *old_proxy_story(healthy_at=3.5, deploying=True)[1:],
    ]
    events = parse_records(story)
    assert first_healthy(events, sha=SHA, since=T0) is None
    assert first_healthy(events, sha=OLD, since=T0) == T0 + timedelta(seconds=3.5)


KAMAL_PROXY_STEP = (
    "  INFO [8393a3c7] Running docker exec kamal-proxy kamal-proxy deploy shop-web-production "
    '--target="4fce50914392:80" --deploy-timeout="30s" --drain-timeout="30s" '
    '--health-check-path="/up" --buffer-requests on 127.0.0.1'
)


def real_proxy_story() -> list[LogRecord]:
    """kamal-proxy on a host with no vmkit-agent: its lines name the target by id only."""
    target = "4fce50914392:80"
    return [
        rec(
            "kamal-proxy", proxy("Deploying", 1.0, service="shop-web-production", targets=[target])
        ),
        rec(
            "kamal-proxy",
            proxy("Target health updated", 2.5, target=target, state="healthy", was="adding"),
        ),
    ]


@pytest.mark.parametrize("kamal_first", [True, False], ids=["kamal-first", "proxy-first"])
def test_kamals_own_proxy_step_ties_the_id_to_the_version_without_the_agent(
    kamal_first: bool,
) -> None:
    container_id = proxy_deploy_target(KAMAL_PROXY_STEP)
    assert container_id == "4fce50914392"
    watch = HealthWatch(SHA, since=T0)
    found = watch.ours(container_id) if kamal_first else None
    for event in parse_records(real_proxy_story()):
        found = watch.feed(event) or found
    if not kamal_first:
        assert found is None and watch.first_healthy is None  # nothing names the version yet
        found = watch.ours(container_id)
    assert found is not None and watch.first_healthy == T0 + timedelta(seconds=2.5)
    other = HealthWatch(SHA, since=T0)  # without Kamal's line: attributed to nobody
    for event in parse_records(real_proxy_story()):
        assert other.feed(event) is None


@pytest.mark.parametrize(
    "line",
    [
        "  INFO [8393a3c7] Running docker exec kamal-proxy kamal-proxy deploy shop-web "
        '--target="web-web-production-abc:80" on 127.0.0.1',  # a name (Kamal 2.0): not an id
        "  INFO [8393a3c7] Running docker exec kamal-proxy kamal-proxy remove shop-web on 10.0.0.1",
        '  INFO [1] Running echo --target="4fce50914392:80" on 127.0.0.1',
    ],
)
def test_only_kamals_proxy_deploy_step_names_a_target(line: str) -> None:
    assert proxy_deploy_target(line) is None
