"""HealthWatch: which VM line ends a deploy's duration, and whose deploy it is (pure logic,
events in arrival order). Two deploys may overlap on one environment: a line counts for a deploy
only by the version it names, never by its time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from vmkit_tui.sources.ssh.vm_log import HealthWatch, VmEvent, parse_agent_line, parse_proxy_line

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 40
OTHER = "b" * 40
OURS, THEIRS = "c1c1c1c1c1c1", "c2c2c2c2c2c2"  # docker short ids, as Kamal gives kamal-proxy


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def proxy(seconds: float, msg: str, host: str = "vm", **attrs: object) -> VmEvent:
    line = json.dumps({"time": at(seconds).isoformat(), "level": "INFO", "msg": msg, **attrs})
    event = parse_proxy_line(line, at(seconds), host)
    assert event is not None
    return event


def agent(seconds: float, text: str, host: str = "vm") -> VmEvent:
    event = parse_agent_line(text, at(seconds), host)
    assert event is not None
    return event


def started(seconds: float, sha: str, cid: str, host: str = "vm") -> VmEvent:
    return agent(seconds, f"watching new container app-web-production-{sha} ({cid})", host)


def healthy(seconds: float, cid: str, host: str = "vm") -> VmEvent:
    return proxy(seconds, "Target health updated", host, target=f"{cid}:3000", state="healthy")


def test_the_proxy_marking_the_deploying_target_of_this_version_healthy_decides() -> None:
    watch = HealthWatch(SHA, since=START)
    assert watch.feed(started(0.5, SHA, OURS)) is None
    assert watch.feed(proxy(1, "Deploying", targets=[f"{OURS}:3000"])) is None
    assert watch.feed(proxy(2, "Healthcheck failed", url=f"http://{OURS}:3000/up")) is None
    # The agent's confirmation may arrive first (another connection): it does not decide.
    assert watch.feed(agent(3.4, f"new container app-web-production-{SHA} is healthy")) is None
    found = watch.feed(healthy(3, OURS))
    assert found is not None and found.at == at(3) and watch.first_healthy == at(3)
    assert watch.fallback is not None and watch.fallback.at == at(3.4)
    assert watch.feed(healthy(4, OURS)) is None  # once


def test_two_overlapping_deploys_each_get_their_own_container() -> None:
    ours, theirs = HealthWatch(SHA, since=START), HealthWatch(OTHER, since=START)
    lines = [
        started(1, OTHER, THEIRS),
        proxy(1.2, "Deploying", targets=[f"{THEIRS}:3000"]),
        healthy(5, THEIRS),  # the other deploy's container: not ours, however recent
        agent(5.4, f"new container app-web-production-{OTHER} is healthy"),
        started(50, SHA, OURS),
        proxy(50.2, "Deploying", targets=[f"{OURS}:3000"]),
        healthy(53, OURS),
    ]
    found = {
        sha: [watch.feed(line) for line in lines] for sha, watch in (("a", ours), ("b", theirs))
    }
    assert [e.at for e in found["a"] if e is not None] == [at(53)]
    assert [e.at for e in found["b"] if e is not None] == [at(5)]
    assert ours.fallback is None  # the agent line names the other SHA


def test_a_healthy_target_waits_for_the_line_that_names_its_version() -> None:
    watch = HealthWatch(SHA, since=START)
    assert watch.feed(proxy(1, "Deploying", targets=[f"{OURS}:3000"])) is None
    assert watch.feed(healthy(3, OURS)) is None  # whose container? not known yet
    found = watch.feed(started(0.8, SHA, OURS + "0" * 52))  # a full id, arriving late
    assert found is not None and found.at == at(3) and watch.first_healthy == at(3)


def test_lines_that_name_no_version_are_attributed_to_nobody() -> None:
    watch = HealthWatch(SHA, since=START)
    lines = [
        proxy(1, "Deploying", targets=[f"{OURS}:3000"]),
        healthy(3, OURS),
        proxy(4, "Target health updated", target=f"{THEIRS}:3000", state="healthy", was="adding"),
        started(2, SHA, OURS, host="other-vm"),  # an id means nothing on another host
        agent(5, "container is healthy"),
    ]
    assert [watch.feed(line) for line in lines] == [None] * len(lines)
    assert watch.first_healthy is None and watch.fallback is None


def test_a_target_named_by_its_container_carries_its_version() -> None:
    watch = HealthWatch(SHA, since=START)
    other = proxy(
        2, "Target health updated", target=f"x-{OTHER}:3000", state="healthy", was="adding"
    )
    assert watch.feed(other) is None
    mine = proxy(3, "Target health updated", target=f"x-{SHA}:3000", state="healthy", was="adding")
    assert watch.feed(mine) is mine


def test_old_lines_and_other_targets_do_not_count() -> None:
    watch = HealthWatch(SHA, since=START)
    assert watch.feed(started(-5, SHA, THEIRS)) is None
    assert watch.feed(healthy(-4, THEIRS)) is None
    assert watch.feed(started(0.5, SHA, OURS)) is None
    assert watch.feed(proxy(1, "Deploying", targets=[f"{OURS}:3000"])) is None
    assert watch.feed(healthy(2, THEIRS)) is None  # not the target being deployed
    assert watch.first_healthy is None


def test_the_fallback_is_the_earliest_agent_confirmation_of_this_sha() -> None:
    watch = HealthWatch(SHA, since=START)
    watch.feed(agent(9, f"new container app-web-production-{SHA} is healthy: GET /up 200"))
    watch.feed(agent(7, f"new container app-web-production-{SHA} is healthy: GET /up 200"))
    watch.feed(agent(8, f"traffic flowing to app-web-production-{SHA}: 12 requests in 5s"))
    assert watch.fallback is not None and watch.fallback.at == at(7)
