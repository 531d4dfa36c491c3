"""Rollback eligibility from gathered facts (pure): which verdict, and the words that say why."""

from __future__ import annotations

from datetime import UTC, datetime

from vmkit_tui.domain.eligibility import (
    Eligibility,
    EligibilityFacts,
    HostContainers,
    RegistryTags,
    rollback_eligibility,
)

SHA = "a" * 40
OTHER = "b" * 40
AT = datetime(2026, 5, 1, tzinfo=UTC)
IMAGE = "ghcr.io/acme/web"


def facts(*hosts: HostContainers, tags: frozenset[str] | None = frozenset()) -> EligibilityFacts:
    problem = "" if tags is not None else "the token cannot read packages"
    return EligibilityFacts(hosts, RegistryTags(IMAGE, tags, problem), AT)


def host(name: str, *versions: str) -> HostContainers:
    return HostContainers(name, frozenset(versions))


def test_not_checked_is_unknown() -> None:
    found = rollback_eligibility(SHA, None)
    assert (found.state, found.reason) == (Eligibility.UNKNOWN, "not checked yet")


def test_container_on_every_host_is_retained_whatever_ghcr_says() -> None:
    found = rollback_eligibility(SHA, facts(host("h1", SHA), host("h2", SHA, OTHER), tags=None))
    assert found.state is Eligibility.RETAINED
    assert found.kamal_rollback_works
    assert "h1, h2" in found.reason


def test_one_host_without_it_needs_the_registry_and_is_named() -> None:
    found = rollback_eligibility(
        SHA, facts(host("h1", SHA), host("h2", OTHER), tags=frozenset({SHA}))
    )
    assert found.state is Eligibility.IN_REGISTRY
    assert found.missing_on == ("h2",)
    assert found.reason == f"no container on h2; image {IMAGE}:aaaaaaa in GHCR"
    assert not found.kamal_rollback_works


def test_neither_container_nor_tag_is_gone() -> None:
    found = rollback_eligibility(SHA, facts(host("h1", OTHER), tags=frozenset({OTHER})))
    assert found.state is Eligibility.GONE
    assert "no tag aaaaaaa in GHCR" in found.reason


def test_registry_unreadable_with_a_container_missing_is_unknown_saying_why() -> None:
    found = rollback_eligibility(SHA, facts(host("h1", OTHER), tags=None))
    assert found.state is Eligibility.UNKNOWN
    assert "cannot read packages" in found.reason
    assert found.missing_on == ("h1",)


def test_unreachable_host_leaves_it_unknown_and_names_the_host() -> None:
    down = HostContainers("h2", None, "connection refused")
    found = rollback_eligibility(SHA, facts(host("h1", SHA), down, tags=frozenset({SHA})))
    assert found.state is Eligibility.UNKNOWN
    assert "h2: connection refused" in found.reason


def test_a_host_known_to_lack_it_decides_even_when_another_is_unreachable() -> None:
    down = HostContainers("h2", None, "timed out")
    found = rollback_eligibility(SHA, facts(host("h1", OTHER), down, tags=frozenset({SHA})))
    assert found.state is Eligibility.IN_REGISTRY
    assert "cannot check h2" in found.reason


def test_no_hosts_configured_is_unknown() -> None:
    found = rollback_eligibility(SHA, facts(tags=frozenset({SHA})))
    assert found.state is Eligibility.UNKNOWN


def test_a_tag_beyond_a_partial_listing_is_not_called_gone() -> None:
    partial = EligibilityFacts(
        (host("h1", OTHER),), RegistryTags(IMAGE, frozenset(), "", False), AT
    )
    found = rollback_eligibility(SHA, partial)
    assert found.state is Eligibility.UNKNOWN
    assert "not among the newest" in found.reason
