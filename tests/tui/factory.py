"""A small, fully deterministic history and spools for TUI tests (fixed ids, times and text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vmkit_tui.config import Config, parse_config
from vmkit_tui.domain.models import Deploy, Diagnosis, EventKind, NewEvent, Status, Trigger
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History
from vmkit_tui.store.spool import LogRecord, SpoolWriter

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOSTILE_TITLE = "Fix [/] parsing [@click=app.quit]x \x1b]52;c;cm0gLXJmIH4=\x07done"
HOSTILE_LINES = [
    "[/]",
    "[@click=app.quit]click me",
    "\x1b]52;c;cm0gLXJmIH4=\x07clipboard",
    "\x1b]0;pwned-title\x07title",
    "\x1b[2J\x1b[Hcleared",
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    "invalid \ufffd utf-8",
    "\x1b[32mgreen stays\x1b[0m",
]


def sha(n: int) -> str:
    return f"{n:040x}"[-40:].replace("0", "a", 3)


@dataclass(frozen=True)
class Sample:
    history: Path
    data_dir: Path
    config: Config
    ids: dict[str, str]  # name → deploy id


def _deploy(
    n: int, repo: str, env: str, status: Status, minutes_ago: int, **extra: object
) -> tuple[Deploy, list[NewEvent]]:
    deploy_id = f"{n:012x}"
    at = NOW - timedelta(minutes=minutes_ago)
    deploy = Deploy(
        id=deploy_id,
        repo=repo,
        environment=env,
        sha=f"{n:02x}" * 20,
        triggered_by=extra.pop("trigger", Trigger.PUSH),  # type: ignore[arg-type]
        actor=str(extra.pop("actor", "octocat")),
        created_at=at,
        run_id=1000 + n,
        run_url=f"https://github.com/{repo}/actions/runs/{1000 + n}",
        rollback_of=extra.pop("rollback_of", None),  # type: ignore[arg-type]
    )
    title = str(extra.pop("title", f"Merge pull request #{n} from acme/feature-{n}"))
    events = [
        NewEvent(
            deploy_id, EventKind.CREATED, at, data={"title": title}, event_id=f"{deploy_id}:c"
        ),
    ]
    if status is not Status.PENDING:
        events.append(
            NewEvent(
                deploy_id,
                EventKind.STATUS,
                at + timedelta(seconds=5),
                Status.RUNNING,
                event_id=f"{deploy_id}:r",
            )
        )
    if status.is_final:
        if status is Status.SUCCEEDED:
            events.append(
                NewEvent(
                    deploy_id,
                    EventKind.FIRST_HEALTHY,
                    at + timedelta(seconds=47),
                    event_id=f"{deploy_id}:h",
                )
            )
        events.append(
            NewEvent(
                deploy_id,
                EventKind.STATUS,
                at + timedelta(seconds=80),
                status,
                event_id=f"{deploy_id}:f",
            )
        )
    diagnosis = extra.pop("diagnosis", None)
    if isinstance(diagnosis, Diagnosis):
        events.append(
            NewEvent(
                deploy_id,
                EventKind.DIAGNOSIS,
                at + timedelta(seconds=81),
                data=diagnosis.to_data(),
                event_id=f"{deploy_id}:d",
            )
        )
    assert not extra, extra
    return deploy, events


HEALTH = Diagnosis(
    cause="Health check timed out: the app is not answering on 0.0.0.0:$PORT",
    fix="bind the server to 0.0.0.0:$PORT (it listens on 127.0.0.1)",
    line="target failed to become healthy within configured timeout (30s)",
    source="kamal-proxy",
    line_number=6,
)


def build_sample(tmp_path: Path) -> Sample:
    """Two repos; acme/storefront production has running, failed, succeeded and a rollback."""
    history_path = tmp_path / "history.json"
    data_dir = tmp_path / "data"
    creates = [
        _deploy(
            1, "acme/storefront", "production", Status.SUCCEEDED, 300, title="Add checkout page"
        ),
        _deploy(2, "acme/storefront", "production", Status.SUCCEEDED, 240, title="Speed up cart"),
        _deploy(
            3,
            "acme/storefront",
            "production",
            Status.FAILED,
            180,
            title="Bind to localhost",
            diagnosis=HEALTH,
        ),
        _deploy(
            4,
            "acme/storefront",
            "production",
            Status.SUCCEEDED,
            120,
            trigger=Trigger.MANUAL,
            actor="maria-chen",
            rollback_of="000000000002",
            title="Roll back production to 0202020",
        ),
        _deploy(
            5,
            "acme/storefront",
            "production",
            Status.RUNNING,
            2,
            title=HOSTILE_TITLE,
            actor="[@click=app.quit]mallory",
        ),
        _deploy(
            6,
            "acme/storefront",
            "staging",
            Status.CANCELLED,
            60,
            trigger=Trigger.MCP,
            actor="assistant",
        ),
        _deploy(7, "acme/storefront", "staging", Status.SUCCEEDED, 30),
        _deploy(8, "acme/billing-api", "production", Status.SUCCEEDED, 90),
    ]
    History(history_path).apply(creates)
    with SpoolWriter.for_deploy(data_dir, "000000000003") as spool:
        spool.append_many(
            LogRecord(NOW - timedelta(minutes=180, seconds=-n), "deploy", "github", f"step {n}: ok")
            for n in range(6)
        )
        spool.append(
            LogRecord(NOW - timedelta(minutes=179), "203.0.113.10", "kamal-proxy", HEALTH.line)
        )
        spool.append_many(
            LogRecord(NOW - timedelta(minutes=178, seconds=-n), "deploy", "github", f"cleanup {n}")
            for n in range(40)
        )
    with SpoolWriter.for_deploy(data_dir, "000000000005") as spool:
        spool.append_many(
            LogRecord(
                NOW - timedelta(minutes=2, seconds=-n), "build", "github", f"compile line {n}"
            )
            for n in range(120)
        )
        spool.append_many(
            LogRecord(NOW - timedelta(minutes=1), "203.0.113.10", "kamal-proxy", text)
            for text in HOSTILE_LINES
        )
    config = parse_config(
        {
            "repos": [
                {
                    "name": "acme/storefront",
                    "environments": {
                        # two hosts: VM log lines say which one they came from
                        "production": {"hosts": ["deploy@203.0.113.10", "deploy@203.0.113.11"]},
                        "staging": {},
                    },
                },
                {"name": "acme/billing-api", "environments": {"production": {}}},
            ]
        }
    )
    return Sample(history_path, data_dir, config, {f"d{n}": f"{n:012x}" for n in range(1, 9)})


def make_app(
    sample: Sample, *, now: Callable[[], datetime] = lambda: NOW, **options: object
) -> VmkitApp:
    service = DeployService(
        sample.config, AsyncHistory(History(sample.history)), sample.data_dir, now=now
    )
    return VmkitApp(service, now=now, spinners=False, track=False, **options)  # type: ignore[arg-type]
