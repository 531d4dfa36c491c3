"""FirstHealthy: which VM line ends a deploy's duration (pure logic, events in arrival order)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from vmkit_tui.sources.ssh.vm_log import VmEvent, parse_agent_line, parse_proxy_line
from vmkit_tui.tracking.vm_watch import FirstHealthy

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 40
OTHER = "b" * 40


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def proxy(seconds: float, msg: str, **attrs: object) -> VmEvent:
    line = json.dumps({"time": at(seconds).isoformat(), "level": "INFO", "msg": msg, **attrs})
    event = parse_proxy_line(line, at(seconds), "vm")
    assert event is not None
    return event


def agent(seconds: float, text: str) -> VmEvent:
    event = parse_agent_line(text, at(seconds), "vm")
    assert event is not None
    return event


def test_the_proxy_marking_the_deploying_target_healthy_decides() -> None:
    watch = FirstHealthy(SHA, START)
    assert not watch.feed(proxy(1, "Deploying", targets=["c1:3000"]))
    assert not watch.feed(proxy(2, "Healthcheck failed", url="http://c1:3000/up", error="refused"))
    # The agent's confirmation may arrive first (another connection): it does not decide.
    assert not watch.feed(agent(3.4, f"new container app-web-production-{SHA} is healthy"))
    assert watch.feed(proxy(3, "Target health updated", target="c1:3000", state="healthy"))
    assert watch.fallback is not None and watch.fallback.at == at(3.4)


def test_other_targets_other_shas_and_old_lines_do_not_count() -> None:
    watch = FirstHealthy(SHA, START)
    assert not watch.feed(proxy(-5, "Deploying", targets=["old:3000"]))
    assert not watch.feed(proxy(-4, "Target health updated", target="old:3000", state="healthy"))
    assert not watch.feed(proxy(1, "Deploying", targets=["c1:3000"]))
    assert not watch.feed(proxy(2, "Target health updated", target="c9:3000", state="healthy"))
    assert not watch.feed(proxy(2, "Target health updated", target=f"x-{OTHER}", state="healthy"))
    assert not watch.feed(agent(2, f"new container app-web-production-{OTHER} is healthy"))
    assert watch.fallback is None
    assert watch.feed(proxy(3, "Target health updated", target="c1:3000", state="healthy"))
    assert not watch.feed(proxy(4, "Target health updated", target="c1:3000", state="healthy"))


def test_a_target_going_from_adding_to_healthy_counts_when_deploying_was_missed() -> None:
    watch = FirstHealthy(SHA, START)
    event = proxy(3, "Target health updated", target="c1:3000", state="healthy", was="adding")
    assert watch.feed(event)


def test_the_fallback_is_the_earliest_agent_confirmation_of_this_sha() -> None:
    watch = FirstHealthy(SHA, START)
    watch.feed(agent(9, f"new container app-web-production-{SHA} is healthy: GET /up 200"))
    watch.feed(agent(7, f"new container app-web-production-{SHA} is healthy: GET /up 200"))
    watch.feed(agent(8, f"traffic flowing to app-web-production-{SHA}: 12 requests in 5s"))
    assert watch.fallback is not None and watch.fallback.at == at(7)
