"""A realistic history for benchmarks: 100 environments × 50 deploys, about 4 events each
(or `repos` × 10 environments × 50: 20 repos make 10,000 deploys).

Shared by bench/history.py and bench/startup.py so both measure the same shape of data.
"""

from __future__ import annotations

import random
from datetime import timedelta

from vmkit_tui.domain.models import (
    Deploy,
    EventKind,
    NewEvent,
    Status,
    Trigger,
    new_deploy_id,
    utcnow,
)

REPOS = [f"acme/service-{n}" for n in range(10)]


def repo_names(count: int = len(REPOS)) -> list[str]:
    return [f"acme/service-{n}" for n in range(count)]


ENVIRONMENTS = [
    "production",
    "staging",
    "qa",
    "preview",
    "eu",
    "us",
    "apac",
    "canary",
    "dev",
    "demo",
]
CAUSES = [
    ("health check timed out", "bind 0.0.0.0:$PORT", "target failed to become healthy within 30s"),
    ("image push to GHCR failed", "give the workflow packages: write", "denied: permission_denied"),
    ("buildpack detection failed", "add a Procfile", "ERROR: No buildpack groups passed detection"),
]


def deploy_with_events(rng: random.Random, repo: str, env: str, n: int) -> tuple[Deploy, list]:
    """One deploy as the tracker records it: created, running, healthy, finished (+ diagnosis)."""
    run_id = 9_000_000_000 + rng.randrange(10**9)
    at = utcnow() - timedelta(days=200) + timedelta(hours=n)
    deploy = Deploy(
        id=new_deploy_id(),
        repo=repo,
        environment=env,
        sha=f"{rng.getrandbits(160):040x}",
        triggered_by=rng.choice(list(Trigger)),
        actor=rng.choice(["octocat", "hubot", "dependabot[bot]", "mona"]),
        created_at=at,
        run_id=run_id,
        run_url=f"https://github.com/{repo}/actions/runs/{run_id}",
    )
    failed = rng.random() < 0.15
    title = f"Merge pull request #{rng.randrange(9999)} from acme/feature-{n}"
    events = [
        NewEvent(deploy.id, EventKind.CREATED, at, detail="run seen", data={"title": title}),
        NewEvent(deploy.id, EventKind.STATUS, at + timedelta(seconds=4), Status.RUNNING),
    ]
    if failed:
        cause, fix, line = rng.choice(CAUSES)
        data = {"cause": cause, "fix": fix, "line": line, "source": "kamal", "line_number": 212}
        events.append(NewEvent(deploy.id, EventKind.DIAGNOSIS, at, detail=cause, data=data))
    else:
        healthy = at + timedelta(seconds=rng.randrange(30, 90))
        events.append(NewEvent(deploy.id, EventKind.FIRST_HEALTHY, healthy, detail="healthy"))
    final = Status.FAILED if failed else Status.SUCCEEDED
    end = at + timedelta(seconds=100)
    events.append(NewEvent(deploy.id, EventKind.STATUS, end, final, detail="run completed"))
    return deploy, events


def sample_creates(
    rng: random.Random, per_environment: int = 50, repos: int = len(REPOS)
) -> list[tuple[Deploy, list[NewEvent]]]:
    return [
        deploy_with_events(rng, repo, env, n)
        for repo in repo_names(repos)
        for env in ENVIRONMENTS
        for n in range(per_environment)
    ]


def sample_config(repos: int = len(REPOS)) -> dict:
    """A parsed-TOML config naming every repo and environment of the sample."""
    return {
        "repos": [
            {"name": repo, "environments": {env: {} for env in ENVIRONMENTS}}
            for repo in repo_names(repos)
        ]
    }
