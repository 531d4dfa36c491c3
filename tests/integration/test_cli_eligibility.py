"""`rollback_eligibility` in `deploys --json` and `history --json`, checked against the demo
sandbox (real SSH to its VMs, real HTTP to its GHCR): acme/storefront's production runs on two
hosts, one of which had a kept container removed by hand."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests.integration.cli_sandbox import Run, Sandbox
from vmkit_tui.__main__ import main
from vmkit_tui.sandbox.world.world import World

pytest_plugins = ["tests.integration.cli_fixtures"]

REPO = "acme/storefront"


def _removed_by_hand(world: World) -> str:
    env = world.environment(REPO, "production")
    first, second = ({c.sha for c in world.containers(vm)} for vm in env.vm_names)
    (sha,) = first - second
    return sha


def _run(sb: Sandbox, capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = main(sb.args(*argv))
    out, err = capsys.readouterr()
    return Run(code, out, err)


@pytest.mark.parametrize("command", ["deploys", "history"])
def test_json_rows_say_whether_a_rollback_to_them_would_work(
    shared: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    sha = shared.runtime.run_in_sandbox(_removed_by_hand)
    argv = (
        ("deploys", REPO, "production", "--json", "--no-sync")
        if command == "deploys"
        else (
            "history",
            "--json",
        )
    )
    done = _run(shared, capsys, *argv)
    assert done.code == 0, done.err
    rows = [
        row
        for row in json.loads(done.out)
        if (row["repo"], row["environment"]) == (REPO, "production")
    ]
    host = str(shared.config.repo(REPO).environment("production").hosts[1])
    removed = next(row for row in rows if row["sha"] == sha)
    assert removed["rollback_eligibility"] == "in_registry"
    assert f"no container on {host};" in removed["rollback_eligibility_reason"]
    states = {row["rollback_eligibility"] for row in rows}
    assert "retained" in states and states <= {"retained", "in_registry", "gone", "unknown"}
