"""Why did a deploy fail? Pinpoint the line and say the fix, from the logs we already have.

Pure functions over lines (GitHub job logs, Kamal output, kamal-proxy and vmkit-agent output).
A GitHub job log ends with cleanup steps, so the search is anchored on the last `##[error]` and
confined to the step that produced it (from its `##[group]Run …` header); if that step explains
nothing, the previous `##[error]` is tried. Command echoes (`INFO [id] Running …`, the script
shown under `##[group]Run …`, `##[command]…`) are never evidence: a successful deploy prints the
very strings a failure would. When several rules match, the most specific wins, then the one
closest to the anchor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vmkit_tui.domain.models import Diagnosis, is_sha
from vmkit_tui.sources.github.job_log import parse_timestamp

LINE_LIMIT = 500  # a Diagnosis quotes at most this much of the line
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_KAMAL_RUNNING = re.compile(r"^\s*(?:INFO|DEBUG)\s+\[[0-9a-f]{8}\]\s+Running\s")
_ON_HOST = re.compile(r"(?:on host|executing on host)\s+([^\s:]+)")
_PROCFILE_MISSING = re.compile(r"(?i)procfile not found|no procfile|missing procfile")
_LOOPBACK_BIND = re.compile(
    r"(?i)(?:listening|running|serving|bound|started)\b.{0,40}?"
    r"(?:https?://)?(?:127\.0\.0\.1|localhost|\[::1\]):(\d{2,5})"
)


class _Text:
    """A line reduced to what rules match against (ANSI removed, timestamp removed)."""

    __slots__ = ("number", "text")

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text


@dataclass(frozen=True, slots=True)
class Rule:
    """One known failure: a line pattern, how specific it is, and what to say."""

    name: str
    pattern: re.Pattern[str]
    specificity: int
    cause: Callable[[re.Match[str], Sequence[_Text]], str]
    fix: Callable[[re.Match[str], Sequence[_Text]], str]


def _const(text: str) -> Callable[[re.Match[str], Sequence[_Text]], str]:
    return lambda _match, _window: text


def _host_suffix(match: re.Match[str], _window: Sequence[_Text]) -> str:
    found = _ON_HOST.search(match.string)
    return f" ({found.group(1)})" if found else ""


def _ssh_unreachable_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    return f"Kamal could not connect to the VM over SSH{_host_suffix(match, window)}"


def _ssh_auth_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    return f"The VM refused Kamal's SSH key{_host_suffix(match, window)}"


def _health_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    for line in window:
        bound = _LOOPBACK_BIND.search(line.text)
        if bound:
            return (
                "Health check timed out: the app listens on 127.0.0.1:"
                f"{bound.group(1)}, which kamal-proxy cannot reach from outside the container"
            )
    return "Health check timed out: kamal-proxy never got a 2xx from the new container"


def _buildpack_cause(_match: re.Match[str], window: Sequence[_Text]) -> str:
    if any(_PROCFILE_MISSING.search(line.text) for line in window):
        return "Buildpack detection failed: the app has no Procfile"
    return "Buildpack detection failed: no buildpack recognised the app"


def _lock_cause(_match: re.Match[str], window: Sequence[_Text]) -> str:
    holder = next((ln.text.strip() for ln in window if ln.text.startswith("Locked by:")), "")
    return "Another deploy holds Kamal's deploy lock" + (f" ({holder})" if holder else "")


def _rollback_fix(match: re.Match[str], _window: Sequence[_Text]) -> str:
    version = match.group(1)
    shown = version if is_sha(version) else "<sha>"
    return f"Deploy that image from GHCR instead: `kamal deploy --skip-push --version {shown}`"


RULES: tuple[Rule, ...] = (
    Rule(
        "buildpack_detection_failed",
        re.compile(
            r"No buildpack groups? passed detection|failed to detect: no buildpacks participating"
            r"|No default language could be detected"
        ),
        3,
        _buildpack_cause,
        _const(
            "Add a Procfile at the repository root (e.g. `web: <command starting the app>`), "
            "or set the buildpack explicitly"
        ),
    ),
    Rule(
        "ghcr_push_denied",
        re.compile(
            r"denied: permission_denied: write_package"
            r"|denied: installation not allowed to (?:Write|Create) organization package"
            r"|permission_denied: The token provided does not match expected scopes"
        ),
        3,
        _const("Image push to GHCR was denied: the workflow token cannot write packages"),
        _const(
            "Give the job `permissions: packages: write` in the workflow (and, if the package "
            "already exists, grant this repository write access in its Manage Actions access)"
        ),
    ),
    Rule(
        "ghcr_push_forbidden",
        re.compile(r"(?i)ghcr\.io.*403 Forbidden|403 Forbidden.*ghcr\.io"),
        2,
        _const("Image push to GHCR was refused (403 Forbidden)"),
        _const("Give the job `permissions: packages: write` in the workflow"),
    ),
    Rule(
        "health_check_timeout",
        re.compile(
            r"target failed to become healthy|container not ready after \d+ seconds"
            r"|First \S+ container is unhealthy|never became healthy"
        ),
        3,
        _health_cause,
        _const(
            "Make the app listen on 0.0.0.0:$PORT (not 127.0.0.1) and answer 2xx on the "
            "health check path (/up by default)"
        ),
    ),
    Rule(
        "ssh_auth_failed",
        re.compile(r"Net::SSH::AuthenticationFailed"),
        3,
        _ssh_auth_cause,
        _const(
            "Check the deploy key: the SSH private key the workflow uses must match an "
            "authorized_keys entry of the deploy user on the VM"
        ),
    ),
    Rule(
        "ssh_unreachable",
        re.compile(
            r"Net::SSH::(?:ConnectionTimeout|Disconnect)"
            r"|Errno::(?:ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)"
            r"|connect\(2\) for \S+:22\b"
        ),
        3,
        _ssh_unreachable_cause,
        _const(
            "Check that the VM is running and that port 22 is open to the GitHub runners "
            "(a firewall or security-group change?)"
        ),
    ),
    Rule(
        "deploy_lock_held",
        re.compile(r"Deploy lock already in place|Kamal::Cli::LockError|Deploy lock found"),
        3,
        _lock_cause,
        _const(
            "Check nobody is deploying (`kamal lock status`), then run `kamal lock release` "
            "and deploy again"
        ),
    ),
    Rule(
        "rollback_container_missing",
        re.compile(r"The app version '([^']*)' is not available as a container"),
        3,
        lambda m, _w: (
            f"Version {m.group(1)[:12]} is no longer a stopped container on the VM "
            "(Kamal keeps only the last few), so `kamal rollback` cannot use it"
        ),
        _rollback_fix,
    ),
    Rule(
        "image_missing_service_label",
        re.compile(r"""(?<!echo ")Image \S+ is missing the 'service' label"""),
        3,
        _const("The image lacks the `service` label Kamal checks before booting it"),
        _const(
            "Label the image `service=<service from config/deploy.yml>` when building it "
            "(or make `service:` in deploy.yml match the label)"
        ),
    ),
    Rule(
        "image_not_in_registry",
        re.compile(r"manifest unknown|manifest for \S+ not found"),
        2,
        _const("The image for this commit is no longer in GHCR"),
        _const("Pick a deploy whose image still exists, or rebuild this commit"),
    ),
)


def diagnose(lines: Sequence[object], *, source: str = "github") -> Diagnosis | None:
    """The best-supported failure cause in `lines`, or None if nothing known failed.

    `lines` holds strings (raw log lines, timestamps allowed) or objects with `.text` and
    optionally `.number` (joblog.LogLine, sandbox VmLine…).
    """
    texts = [_normalise(item, index) for index, item in enumerate(lines)]
    anchors = [i for i, line in enumerate(texts) if line.text.startswith("##[error]")]
    if not anchors:
        if any(line.text.startswith("##[") for line in texts):
            return None  # a GitHub log without an error: the job did not fail
        return _best(texts, 0, len(texts) - 1, source)
    for anchor in reversed(anchors):
        found = _best(texts, _step_start(texts, anchor), anchor, source)
        if found is not None:
            return found
    return None


def _normalise(item: object, index: int) -> _Text:
    if isinstance(item, str):
        text = parse_timestamp(item.removeprefix("\ufeff"))[1]
        number = index + 1
    else:
        text = str(getattr(item, "text", ""))
        number = getattr(item, "number", None) or index + 1
    return _Text(int(number), _ANSI.sub("", text))


def _step_start(texts: Sequence[_Text], anchor: int) -> int:
    for i in range(anchor, -1, -1):
        if texts[i].text.startswith("##[group]Run "):
            return i
    return 0


def _evidence(texts: Sequence[_Text], start: int, end: int) -> list[_Text]:
    """Lines in start..end that are output, not command echoes."""
    kept: list[_Text] = []
    in_script_echo = False
    for line in texts[start : end + 1]:
        text = line.text
        if text.startswith("##[group]Run "):
            in_script_echo = True
            continue
        if in_script_echo:
            in_script_echo = not text.startswith("##[endgroup]")
            continue
        if text.startswith("##[command]") or _KAMAL_RUNNING.match(text):
            continue
        kept.append(line)
    return kept


def _best(texts: Sequence[_Text], start: int, end: int, source: str) -> Diagnosis | None:
    window = _evidence(texts, start, end)
    best: tuple[int, int, Rule, re.Match[str], _Text] | None = None
    for position, line in enumerate(window):
        for rule in RULES:
            match = rule.pattern.search(line.text)
            if match and (best is None or (rule.specificity, position) >= best[:2]):
                best = (rule.specificity, position, rule, match, line)
    if best is None:
        return None
    _, _, rule, match, line = best
    return Diagnosis(
        cause=rule.cause(match, window),
        fix=rule.fix(match, window),
        line=line.text.removeprefix("##[error]").strip()[:LINE_LIMIT],
        source=source,
        line_number=line.number,
    )
