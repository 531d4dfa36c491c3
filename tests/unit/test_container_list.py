"""`docker container ls` for Kamal's app containers: the command as sent, docker's lines read."""

from __future__ import annotations

import shlex

import pytest

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.sandbox.servers.vm_commands import DockerContainers, Refused, parse_command
from vmkit_tui.sources.ssh.containers import container_list_command, parse_containers

SHA = "c" * 40


def test_command_filters_by_kamal_labels_and_is_quoted() -> None:
    command = container_list_command("web", "production")
    words = shlex.split(command)
    assert words[:5] == ["docker", "container", "ls", "--all", "--no-trunc"]
    assert words[5:9] == [
        "--filter",
        "label=service=web",
        "--filter",
        "label=destination=production",
    ]
    assert words[9] == "--format"
    assert parse_command(command) == DockerContainers("web", "production")
    assert parse_command(container_list_command("web", None)) == DockerContainers("web", None)


@pytest.mark.parametrize("bad", ["-rf", "web;rm", "a b", ""])
def test_names_that_could_reach_the_shell_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        container_list_command(bad, None)
    with pytest.raises(ValidationError):
        container_list_command("web", bad)


def test_the_sandbox_refuses_other_shapes() -> None:
    assert isinstance(parse_command("docker container ls --all"), Refused)


def test_versions_come_from_names_with_the_right_labels() -> None:
    lines = [
        f"web-web-production-{SHA}\texited\tweb\tproduction",
        f"web-workers-production-{'d' * 40}\trunning\tworkers\tproduction",
        f"web-web-staging-{'e' * 40}\texited\tweb\tstaging",  # another destination
        f"web-web-production-{SHA}_replaced_0123456789abcdef\texited\tweb\tproduction",
        "Cannot connect to the Docker daemon",
        f"other-web-production-{'f' * 40}\texited\tweb\tproduction",  # another service's name
    ]
    found = parse_containers(lines, "web", "production")
    assert [(c.version, c.role, c.state) for c in found] == [
        (SHA, "web", "exited"),
        ("d" * 40, "workers", "running"),
    ]


def test_without_a_destination_only_unlabelled_containers_count() -> None:
    lines = [
        f"web-web-{SHA}\texited\tweb\t",
        f"web-web-production-{'d' * 40}\texited\tweb\tproduction",
    ]
    assert [c.version for c in parse_containers(lines, "web", None)] == [SHA]
