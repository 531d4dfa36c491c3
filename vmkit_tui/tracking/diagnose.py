"""Why did a deploy fail? Pinpoint the line and say the fix, from the logs we already have.

Pure functions over lines (GitHub job logs, Kamal output, kamal-proxy and vmkit-agent output).
A GitHub job log ends with cleanup steps, so the search is anchored on the last `##[error]` and
confined to the step that produced it (from its `##[group]Run …` header); if that step explains
nothing, the previous `##[error]` is tried. Command echoes (`INFO [id] Running …`, the script
shown under `##[group]Run …`, `##[command]…`) are never evidence: a successful deploy prints the
very strings a failure would. When several rules match, the most specific wins, then the one
closest to the anchor. A rule may also need a word somewhere in the step (e.g. `ghcr.io` for a
bare `403 (Forbidden)`, which names no registry on its own line). A failed step no rule explains
gets an "unrecognised failure" that quotes its last error lines and claims nothing; a cancelled
job (`##[error]The operation was canceled.`) is not a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from vmkit_tui.domain.models import Diagnosis, is_sha
from vmkit_tui.sources.github.job_log import parse_timestamp

LINE_LIMIT = 500  # a Diagnosis quotes at most this much of the line
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_KAMAL_RUNNING = re.compile(r"^\s*(?:INFO|DEBUG)\s+\[[0-9a-f]{8}\]\s+Running\s")
_ON_HOST = re.compile(r"(?:on host|executing on host)\s+([^\s:]+)")
_PROCFILE_MISSING = re.compile(r"(?i)procfile not found|no procfile|missing procfile")
_CANCELLED = "##[error]The operation was canceled."
_ERRORISH = re.compile(r"(?i)\berror\b|\bfatal\b|\bfailed\b|\bdenied\b|exception")
_KAMAL_ERROR = re.compile(r"^\s*ERROR \([^)]*\):")  # bin/kamal's last word on a failure
_KAMAL_FINISHED = re.compile(r"^\s*Finished all in [0-9.]+ seconds")  # printed before it
UNRECOGNISED = "Unrecognised failure"
# The health path answered, but not 2xx: kamal-proxy's `unexpected status (301)`, or an access
# log line for the check path with a 3xx/4xx status.
_HEALTH_STATUS = re.compile(
    r"(?i)unexpected status \(([34][0-9][0-9])\)|\"(?:GET|HEAD) /up\S* HTTP/[0-9.]+\" ([34][0-9][0-9])\b"
)
_FAILED_BOOT = re.compile(r"Failed to boot (\S+) on ")  # Kamal naming the role it could not boot
_LOOPBACK_BIND = re.compile(
    r"(?i)(?:listening|running|serving|bound|started)\b.{0,40}?"
    r"(?:https?://)?(?:127\.0\.0\.1|localhost|\[::1\]):([0-9]{2,5})"
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
    context: re.Pattern[str] | None = None  # must appear somewhere in the step as well


def _const(text: str) -> Callable[[re.Match[str], Sequence[_Text]], str]:
    return lambda _match, _window: text


def _host_suffix(match: re.Match[str], _window: Sequence[_Text]) -> str:
    found = _ON_HOST.search(match.string)
    return f" ({found.group(1)})" if found else ""


def _ssh_unreachable_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    if "getaddrinfo" in match.string:
        return f"Kamal could not resolve the VM's host name{_host_suffix(match, window)}"
    if "IO::TimeoutError" in match.group():
        return f"Kamal's SSH session to the VM timed out{_host_suffix(match, window)}"
    return f"Kamal could not connect to the VM over SSH{_host_suffix(match, window)}"


def _ssh_auth_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    return f"The VM refused Kamal's SSH key{_host_suffix(match, window)}"


def _health_status(window: Sequence[_Text]) -> str:
    for line in window:
        found = _HEALTH_STATUS.search(line.text)
        if found:
            return found.group(1) or found.group(2)
    return ""


def _health_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    status = _health_status(window)
    if status:
        return f"Health check failed: the health path answered {status}, not 2xx"
    for line in window:
        bound = _LOOPBACK_BIND.search(line.text)
        if bound:
            return (
                "Health check timed out: the app listens on 127.0.0.1:"
                f"{bound.group(1)}, which kamal-proxy cannot reach from outside the container"
            )
    return "Health check timed out: kamal-proxy never got a 2xx from the new container"


def _health_fix(_match: re.Match[str], window: Sequence[_Text]) -> str:
    status = _health_status(window)
    if status.startswith("3"):
        return (
            f"The health path redirects ({status}): serve it without a redirect (e.g. exempt "
            "/up from force_ssl / host checks) or set proxy.healthcheck.path in deploy.yml"
        )
    if status:
        return (
            f"The health path is not found or refused ({status}): add the route (/up by "
            "default) or set proxy.healthcheck.path in deploy.yml to one that answers 2xx"
        )
    return (
        "Make the app listen on 0.0.0.0:$PORT (not 127.0.0.1) and answer 2xx on the "
        "health check path (/up by default)"
    )


def _not_ready_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    seconds, state = match.group(1), match.group(2)
    booted = next((m for ln in window if (m := _FAILED_BOOT.search(ln.text))), None)
    role = f"the {booted.group(1)} role's container" if booted else "a container of a role"
    why = {
        "exited": "its process exited",
        "unhealthy": "its Docker HEALTHCHECK failed",
    }.get(state, f"docker still said {state}")
    return (
        f"{role[0].upper()}{role[1:]} without kamal-proxy was not running after {seconds} s: {why}"
    )


def _not_ready_fix(match: re.Match[str], window: Sequence[_Text]) -> str:
    booted = next((m for ln in window if (m := _FAILED_BOOT.search(ln.text))), None)
    logs = f"`kamal app logs -r {booted.group(1)}`" if booted else "`kamal app logs -r <role>`"
    return (
        "This role serves no traffic through kamal-proxy (`proxy: false` or not the primary "
        f"role), so no health path or port applies: read its output ({logs}) and check its "
        "`cmd` in deploy.yml keeps running; if its image has a Docker HEALTHCHECK, make that "
        "pass (or raise `deploy_timeout`)"
    )


def _ssh_ambiguous_cause(match: re.Match[str], window: Sequence[_Text]) -> str:
    return (
        f"The VM closed Kamal's SSH connection{_host_suffix(match, window)}: either it refused "
        "the key (authentication) or the network/sshd dropped it; the log does not say which"
    )


def _buildpack_cause(_match: re.Match[str], window: Sequence[_Text]) -> str:
    if any(_PROCFILE_MISSING.search(line.text) for line in window):
        return "Buildpack detection failed: the app has no Procfile"
    return "Buildpack detection failed: no buildpack recognised the app"


_ADD_PROCFILE = "Add a Procfile"


def asks_for_procfile(diagnosis: Diagnosis) -> bool:
    """Whether the advice is to add a Procfile: worth checking the repository has none."""
    return diagnosis.fix.startswith(_ADD_PROCFILE)


def with_procfile(diagnosis: Diagnosis) -> Diagnosis:
    """The same diagnosis for a commit that has a Procfile: adding one is not the fix."""
    return replace(
        diagnosis,
        cause="Buildpack detection failed: no buildpack recognised the app (it has a Procfile)",
        fix="Make the app's language recognisable to the buildpack (e.g. Gemfile, "
        "package.json, requirements.txt at the root), or set the buildpack explicitly",
    )


def _lock_cause(_match: re.Match[str], window: Sequence[_Text]) -> str:
    holder = next((ln.text.strip() for ln in window if ln.text.startswith("Locked by:")), "")
    return "Another deploy holds Kamal's deploy lock" + (f" ({holder})" if holder else "")


def _rollback_fix(match: re.Match[str], _window: Sequence[_Text]) -> str:
    version = match.group(1)
    shown = version if is_sha(version) else "<sha>"
    return f"Deploy that image from GHCR instead: `kamal deploy --skip-push --version {shown}`"


_GHCR = re.compile(r"(?i)\bghcr\.io\b")

RULES: tuple[Rule, ...] = (
    Rule(
        "buildpack_detection_failed",
        re.compile(
            r"No buildpack groups? passed detection|failed to detect: no buildpacks participating"
            r"|No default language could be detected|App not compatible with buildpack"
            r"|Application not supported by '[^']*' buildpack"
        ),
        3,
        _buildpack_cause,
        _const(
            _ADD_PROCFILE + " at the repository root (e.g. `web: <command starting the app>`), "
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
        re.compile(r"(?i)\b403 \(?Forbidden\)?"),
        2,
        _const("GHCR refused the request (403 Forbidden): the token cannot write this package"),
        _const("Give the job `permissions: packages: write` in the workflow"),
        _GHCR,
    ),
    Rule(
        "ghcr_unauthenticated",
        re.compile(
            r"unauthorized: unauthenticated|User cannot be authenticated with the token provided"
            r"|\b401 Unauthorized|: unauthorized\b"
        ),
        2,
        _const("GHCR did not accept the credentials (401 unauthenticated)"),
        _const(
            "Log in to ghcr.io with a valid token: in the workflow `docker/login-action` with "
            "`secrets.GITHUB_TOKEN`; for Kamal on the VM, a KAMAL_REGISTRY_PASSWORD token with "
            "read:packages that has not expired"
        ),
        _GHCR,
    ),
    Rule(
        "health_check_timeout",
        re.compile(
            r"target failed to become healthy|never became healthy"
            r"|(?:HealthcheckError|Healthcheck::Error)\b.*container not ready(?! after)"
        ),
        3,
        _health_cause,
        _health_fix,
    ),
    Rule(  # Kamal 2's poller, used only for roles kamal-proxy does not serve
        "role_not_ready",
        re.compile(r"container not ready after ([0-9]+) seconds \(([a-z]+)\)"),
        3,
        _not_ready_cause,
        _not_ready_fix,
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
            r"Net::SSH::ConnectionTimeout|IO::TimeoutError"
            r"|Errno::(?:ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)"
            r"|connect\(2\) for \S+:22\b|SocketError\b.*getaddrinfo"
        ),
        3,
        _ssh_unreachable_cause,
        _const(
            "Check that the VM is running, that its host name resolves (DNS), and that port 22 "
            "is open to the GitHub runners (a firewall or security-group change?)"
        ),
    ),
    Rule(
        "ssh_disconnected",
        re.compile(r"Net::SSH::Disconnect"),
        3,
        _ssh_ambiguous_cause,
        _const(
            "Check both: the deploy key is in the deploy user's authorized_keys on the VM, "
            "and the VM's sshd is up and reachable (MaxStartups, fail2ban, a firewall?)"
        ),
    ),
    Rule(
        "deploy_lock_held",
        re.compile(
            r"Deploy lock already in place|Kamal::Cli::LockError|Deploy lock found"
            r"|Timed out waiting for deploy lock|Deploy lock held manually"
        ),
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
    anchors = [
        i
        for i, line in enumerate(texts)
        if line.text.startswith("##[error]") and not line.text.startswith(_CANCELLED)
    ]
    if not anchors:
        if any(line.text.startswith("##[") for line in texts):
            return None  # a GitHub log without an error (or only cancelled): no failure
        found = _best(texts, _last_kamal_run(texts), len(texts) - 1, source)
        if found is None and any(_KAMAL_ERROR.match(line.text) for line in texts):
            return _unrecognised(_evidence(texts, 0, len(texts) - 1), source)
        return found
    for anchor in reversed(anchors):
        found = _best(texts, _step_start(texts, anchor), anchor, source)
        if found is not None:
            return found
    last = anchors[-1]
    return _unrecognised(_evidence(texts, _step_start(texts, last), last), source)


def _unrecognised(window: Sequence[_Text], source: str) -> Diagnosis | None:
    """No rule explains the failure: quote its last error lines, claim no cause."""
    errors = [
        line
        for line in window
        if _ERRORISH.search(line.text) and not line.text.startswith("##[error]Process completed")
    ]
    # Nothing says "error": the step's last output lines are what it said before it failed.
    errors = (
        errors or [ln for ln in window if ln.text.strip() and not ln.text.startswith("##[")][-3:]
    )
    if not errors:
        return None
    last = errors[-3:]
    quoted = " · ".join(line.text.removeprefix("##[error]").strip() for line in last)
    return Diagnosis(
        cause=f"{UNRECOGNISED}: {quoted}"[:LINE_LIMIT],
        fix="No known cause matches: read the failing step's last error lines in the log",
        line=last[-1].text.removeprefix("##[error]").strip()[:LINE_LIMIT],
        source=source,
        line_number=last[-1].number,
    )


def _normalise(item: object, index: int) -> _Text:
    if isinstance(item, str):
        text = parse_timestamp(item.removeprefix("\ufeff"))[1]
        number = index + 1
    else:
        text = str(getattr(item, "text", ""))
        number = getattr(item, "number", None) or index + 1
    return _Text(int(number), _ANSI.sub("", text))


def _last_kamal_run(texts: Sequence[_Text]) -> int:
    """Where the failed Kamal invocation's output starts when Kamal ran more than once (vmkit-tui
    runs `kamal deploy` after a `kamal rollback` that found no container): after the previous
    invocation's `Finished all in` line, so what that one said (a rollback target not kept) is
    not taken for why the last one failed."""
    errors = [i for i, line in enumerate(texts) if _KAMAL_ERROR.match(line.text)]
    if not errors:
        return 0
    ends = [i for i in range(errors[-1]) if _KAMAL_FINISHED.match(texts[i].text)]
    return ends[-2] + 1 if len(ends) >= 2 else 0


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
    step = texts[start : end + 1]
    rules = [
        rule
        for rule in RULES
        if rule.context is None or any(rule.context.search(line.text) for line in step)
    ]
    best: tuple[int, int, Rule, re.Match[str], _Text] | None = None
    for position, line in enumerate(window):
        for rule in rules:
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
