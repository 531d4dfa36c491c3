"""Deploy-run scenarios: how a GitHub Actions deploy run unfolds, step by step, and its logs.

`plan_run` turns a scenario into a timed plan (jobs, steps, the Kamal script, the moments that
matter: image pushed, container swap, first healthy response). `render_job_log` writes a job's
log text the way GitHub serves it (BOM, 7-digit timestamps, `##[group]`, `##[error]`) from the
plan; it is called lazily, only for jobs somebody asks about.

Push runs have two jobs: `build` (buildpacks → GHCR) and `deploy` (Kamal). Rollback runs are
`workflow_dispatch` runs of the same workflow with a `sha` input: they only have `deploy`,
which runs `kamal deploy --skip-push --version <sha>` (no build step).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from vmkit_tui.sandbox.world.kamal_output import (
    KamalScript,
    KamalTarget,
    LockInfo,
    Outcome,
    deploy_script,
)

SCENARIOS = (
    "success",
    "buildpack_no_procfile",
    "ghcr_push_denied",
    "health_timeout",
    "ssh_unreachable",
    "ssh_auth_failed",
    "lock_held",
)
# Scenarios decided by the world rather than asked for: a rollback to an image deleted from GHCR.
IMAGE_GONE = "image_gone"

BUILDER = "heroku/builder:24"
RUNNER_VERSION = "2.325.0"
CHECKOUT_SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"
KAMAL_VERSION = "2.12.0"

_KAMAL_OUTCOME = {
    "success": Outcome.SUCCESS,
    "health_timeout": Outcome.HEALTH_TIMEOUT,
    "ssh_unreachable": Outcome.SSH_UNREACHABLE,
    "ssh_auth_failed": Outcome.SSH_AUTH_FAILED,
    "lock_held": Outcome.LOCK_HELD,
    IMAGE_GONE: Outcome.IMAGE_MISSING,
}


@dataclass(frozen=True, slots=True)
class RunContext:
    """Everything about a run that its plan and its log text depend on."""

    repo: str  # owner/name
    target: KamalTarget
    head_sha: str
    head_branch: str
    sha: str  # the version deployed (the head commit, or the rollback input)
    previous: str | None  # live version when the run reaches the VM
    environment: str
    is_rollback: bool
    scenario: str
    actor: str
    lock: LockInfo | None = None


@dataclass(eq=False, slots=True)
class StepPlan:
    name: str
    number: int
    kind: str
    start: datetime | None
    end: datetime | None
    conclusion: str  # success | failure | cancelled | skipped
    post: bool = False


@dataclass(eq=False, slots=True)
class JobPlan:
    id: int
    name: str
    created_at: datetime
    started_at: datetime
    completed_at: datetime
    conclusion: str  # success | failure | cancelled | skipped
    steps: list[StepPlan]
    runner_id: int
    kamal: KamalScript | None = None
    kamal_start: datetime | None = None


@dataclass(eq=False, slots=True)
class RunPlan:
    jobs: list[JobPlan]
    started_at: datetime  # first job picked up by a runner: the run leaves queued/pending
    completed_at: datetime
    conclusion: str
    image_pushed_at: datetime | None = None
    swap_at: datetime | None = None
    healthy_at: datetime | None = None
    moments: list[datetime] = field(default_factory=list)

    def refresh_moments(self) -> None:
        """Every moment at which something visible changes (for `World.changed`)."""
        found = {self.started_at, self.completed_at}
        for job in self.jobs:
            found.update((job.created_at, job.started_at, job.completed_at))
            for step in job.steps:
                found.update(moment for moment in (step.start, step.end) if moment is not None)
        self.moments = sorted(found)


def _seconds(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


_BUILD_STEPS = (
    # (name, kind, min seconds, max seconds)
    ("Set up job", "setup", 1.0, 3.0),
    ("Run actions/checkout@v4", "checkout", 1.0, 3.0),
    ("Log in to GHCR", "login", 0.8, 2.0),
    ("Build image with buildpacks", "build", 55.0, 150.0),
    ("Push image to GHCR", "push", 6.0, 20.0),
)
_DEPLOY_STEPS = (
    ("Set up job", "setup", 1.0, 3.0),
    ("Run actions/checkout@v4", "checkout", 1.0, 2.5),
    ("Set up Ruby", "ruby", 3.0, 8.0),
    ("Install Kamal", "gem", 4.0, 11.0),
    ("Set up SSH agent", "ssh_agent", 0.5, 1.5),
    ("Deploy with Kamal", "kamal", 0.0, 0.0),  # as long as the Kamal script
)
_POSTS = {
    "build": (("Post Run actions/checkout@v4", "post_checkout"),),
    "deploy": (
        ("Post Set up SSH agent", "post_ssh_agent"),
        ("Post Run actions/checkout@v4", "post_checkout"),
    ),
}
# Where each scenario fails: (job, step kind, seconds into the step).
_FAILS_AT: dict[str, tuple[str, str, tuple[float, float]]] = {
    "buildpack_no_procfile": ("build", "build", (12.0, 25.0)),
    "ghcr_push_denied": ("build", "push", (3.0, 7.0)),
}


def _plan_job(
    rng: random.Random,
    name: str,
    job_id: int,
    created: datetime,
    specs: tuple[tuple[str, str, float, float], ...],
    fail_kind: str | None,
    fail_after: tuple[float, float],
    kamal: tuple[KamalScript, float] | None,
) -> JobPlan:
    """Steps one after another; a failing step ends early and later main steps are skipped."""
    started = _seconds(created, rng.uniform(2.0, 7.0))
    t = started
    steps: list[StepPlan] = []
    failed = False
    for number, (step_name, kind, low, high) in enumerate(specs, start=1):
        if failed:
            steps.append(StepPlan(step_name, number, kind, t, t, "skipped"))
            continue
        if kind == "kamal" and kamal is not None:
            script, lead = kamal
            duration = lead + script.duration + rng.uniform(0.1, 0.4)
            conclusion = "success" if script.exit_status == 0 else "failure"
        elif kind == fail_kind:
            duration, conclusion = rng.uniform(*fail_after), "failure"
        else:
            duration, conclusion = rng.uniform(low, high), "success"
        end = _seconds(t, duration)
        steps.append(StepPlan(step_name, number, kind, t, end, conclusion))
        failed = conclusion == "failure"
        t = _seconds(end, rng.uniform(0.05, 0.6))
    _append_posts(rng, steps, name, t)
    return JobPlan(
        id=job_id,
        name=name,
        created_at=created,
        started_at=started,
        completed_at=steps[-1].end or t,
        conclusion="failure" if failed else "success",
        steps=steps,
        runner_id=rng.randrange(1_000_000, 9_999_999),
    )


def _append_posts(rng: random.Random, steps: list[StepPlan], job_name: str, t: datetime) -> None:
    """Post steps (for the steps that ran) and `Complete job`; numbered after a gap."""
    ran = {step.kind for step in steps if step.conclusion != "skipped"}
    number = len([step for step in steps if not step.post]) + 4
    posts = [(name, kind) for name, kind in _POSTS[job_name] if kind.removeprefix("post_") in ran]
    for post_name, kind in (*posts, ("Complete job", "complete")):
        end = _seconds(t, rng.uniform(0.2, 1.0))
        steps.append(StepPlan(post_name, number, kind, t, end, "success", post=True))
        number += 1
        t = _seconds(end, rng.uniform(0.02, 0.2))


def plan_run(
    rng: random.Random,
    ctx: RunContext,
    *,
    created_at: datetime,
    gate: datetime | None,
    job_ids: Iterator[int],
) -> RunPlan:
    """The whole run's timeline. `gate` is when the concurrency group lets it start."""
    begin = max(created_at, gate) if gate is not None else created_at
    jobs: list[JobPlan] = []
    image_pushed_at = None
    deploy_created = begin
    if not ctx.is_rollback:
        _, fail_kind, window = _FAILS_AT.get(ctx.scenario, ("", None, (0.0, 0.0)))
        build = _plan_job(rng, "build", next(job_ids), begin, _BUILD_STEPS, fail_kind, window, None)
        jobs.append(build)
        if build.conclusion != "success":
            skipped_id = next(job_ids)
            end = build.completed_at
            jobs.append(JobPlan(skipped_id, "deploy", end, end, end, "skipped", [], 0))
            plan = RunPlan(jobs, build.started_at, end, "failure")
            plan.refresh_moments()
            return plan
        push = next(step for step in build.steps if step.kind == "push")
        image_pushed_at = push.end
        deploy_created = _seconds(build.completed_at, rng.uniform(0.5, 2.0))
    # The Kamal step's start depends on the steps before it: plan with a placeholder first.
    lead = rng.uniform(0.3, 0.8)
    outcome = _KAMAL_OUTCOME[ctx.scenario]
    draft = _plan_job(
        rng, "deploy", next(job_ids), deploy_created, _DEPLOY_STEPS, None, (0, 0), None
    )
    kamal_step = next(step for step in draft.steps if step.kind == "kamal")
    assert kamal_step.start is not None
    kamal_start = _seconds(kamal_step.start, lead)
    script = deploy_script(
        rng,
        ctx.target,
        kamal_start,
        version=ctx.sha,
        previous=ctx.previous,
        outcome=outcome,
        lock=ctx.lock,
    )
    deploy = _retime_kamal(rng, draft, script, lead)
    deploy.kamal, deploy.kamal_start = script, kamal_start
    jobs.append(deploy)
    plan = RunPlan(
        jobs,
        started_at=jobs[0].started_at,
        completed_at=deploy.completed_at,
        conclusion=deploy.conclusion,
        image_pushed_at=image_pushed_at,
        swap_at=_seconds(kamal_start, script.swap_offset)
        if script.swap_offset is not None
        else None,
        healthy_at=_seconds(kamal_start, script.healthy_offset)
        if script.healthy_offset is not None
        else None,
    )
    plan.refresh_moments()
    return plan


def _retime_kamal(rng: random.Random, draft: JobPlan, script: KamalScript, lead: float) -> JobPlan:
    """Stretch the Kamal step to the script's length; skip what follows a failure."""
    steps: list[StepPlan] = []
    failed = False
    t = draft.started_at
    for step in draft.steps:
        if step.post:
            break
        if step.kind != "kamal":
            steps.append(step)
            t = _seconds(step.end or t, rng.uniform(0.05, 0.6))
            continue
        assert step.start is not None
        end = _seconds(step.start, lead + script.duration + rng.uniform(0.1, 0.4))
        failed = script.exit_status != 0
        steps.append(replace(step, end=end, conclusion="failure" if failed else "success"))
        t = _seconds(end, rng.uniform(0.05, 0.6))
    _append_posts(rng, steps, "deploy", t)
    draft.steps = steps
    draft.completed_at = steps[-1].end or t
    draft.conclusion = "failure" if failed else "success"
    return draft


def cancel_plan(plan: RunPlan, at: datetime, *, force: bool, grace: float) -> datetime:
    """Stop the plan at a cancel requested at `at`; returns the moment the run completes.

    The running step is interrupted `grace` seconds later (or finishes first if it was about
    to), later main steps are skipped, post steps still run (not on force-cancel), and jobs
    that had not started are cancelled. Only moments after `at` change.
    """
    cut = _seconds(at, grace)
    completed = cut
    plan.jobs = [job for job in plan.jobs if job.created_at < cut]  # later jobs never exist
    for job in plan.jobs:
        if job.completed_at <= at:
            continue
        if job.started_at >= cut or not job.steps:
            job.started_at = min(job.started_at, cut)
            job.completed_at = cut
            job.conclusion = "cancelled"
            job.steps = [step for step in job.steps if step.start is not None and step.start < cut]
            continue
        kept: list[StepPlan] = []
        for step in job.steps:
            if step.post:
                continue
            if step.end is not None and step.end <= cut:
                kept.append(step)
                continue
            if step.start is not None and step.start < cut:
                kept.append(replace(step, end=cut, conclusion="cancelled"))
            else:
                kept.append(replace(step, start=cut, end=cut, conclusion="skipped"))
        if not force:
            rng = random.Random(job.id)
            _append_posts(rng, kept, job.name, _seconds(cut, 0.3))
        job.steps = kept
        job.completed_at = max((step.end for step in kept if step.end is not None), default=cut)
        job.conclusion = "cancelled"
        completed = max(completed, job.completed_at)
    plan.completed_at = completed
    plan.started_at = min(plan.started_at, completed)
    plan.conclusion = "cancelled"
    if plan.image_pushed_at is not None and plan.image_pushed_at >= cut:
        plan.image_pushed_at = None
    plan.refresh_moments()
    return completed


# ---------------------------------------------------------------------------------------------
# Job log text
# ---------------------------------------------------------------------------------------------


def log_stamp(moment: datetime) -> str:
    """GitHub's log timestamp: 7 fractional digits and a `Z`."""
    moment = moment.astimezone(UTC)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}{moment.microsecond % 7}Z"
    )


def render_job_log(job: JobPlan, ctx: RunContext, rng: random.Random) -> str:
    """The full text of a completed job's log, as `GET /actions/jobs/{id}/logs` serves it."""
    lines: list[tuple[datetime, str]] = []
    for step in job.steps:
        if step.start is None or step.end is None or step.conclusion == "skipped":
            continue
        if step.kind == "kamal":
            lines.extend(_kamal_step_lines(job, step, ctx))
            continue
        texts = _STEP_TEXT[step.kind](rng, ctx, step, job)
        span = (step.end - step.start).total_seconds()
        for index, text in enumerate(texts):
            fraction = index / max(1, len(texts))
            lines.append((_seconds(step.start, span * fraction * 0.98), text))
        if step.conclusion == "cancelled":
            lines.append((step.end, "##[error]The operation was canceled."))
        elif step.conclusion == "failure":
            lines.append((step.end, "##[error]Process completed with exit code 1."))
    return "\ufeff" + "".join(f"{log_stamp(at)} {text}\n" for at, text in lines)


def _kamal_step_lines(job: JobPlan, step: StepPlan, ctx: RunContext) -> list[tuple[datetime, str]]:
    assert step.start is not None and step.end is not None
    command = f"kamal deploy --skip-push --version {ctx.sha} -d {ctx.environment}"
    lines = [
        (step.start, f"##[group]Run {command}"),
        (step.start, command),
        (step.start, "shell: /usr/bin/bash -e {0}"),
        (step.start, "env:"),
        (step.start, "  KAMAL_REGISTRY_PASSWORD: ***"),
        (step.start, "##[endgroup]"),
    ]
    if job.kamal is not None and job.kamal_start is not None:
        for offset, text in sorted(job.kamal.console, key=lambda item: item[0]):
            at = _seconds(job.kamal_start, offset)
            if at < step.end:
                lines.append((at, text))
    if step.conclusion == "failure":
        lines.append((step.end, "##[error]Process completed with exit code 1."))
    elif step.conclusion == "cancelled":
        lines.append((step.end, "##[error]The operation was canceled."))
    return lines


def _group(title: str, *body: str) -> list[str]:
    return [f"##[group]{title}", *body, "##[endgroup]"]


def _setup_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    packages = "read" if ctx.scenario == "ghcr_push_denied" else "write"
    return [
        f"Current runner version: '{RUNNER_VERSION}'",
        f"Runner name: 'GitHub Actions {job.runner_id}'",
        "Runner group name: 'GitHub Actions'",
        "Machine name: 'runnervm" + f"{rng.getrandbits(24):06x}'",
        *_group("Operating System", "Ubuntu", "24.04.2", "LTS"),
        *_group(
            "Runner Image",
            "Image: ubuntu-24.04",
            "Version: 20250602.1.0",
            "Included Software: https://github.com/actions/runner-images/blob/ubuntu24/20250602.1/"
            "images/ubuntu/Ubuntu2404-Readme.md",
        ),
        *_group(
            "GITHUB_TOKEN Permissions", "Contents: read", "Metadata: read", f"Packages: {packages}"
        ),
        "Secret source: Actions",
        "Prepare workflow directory",
        "Prepare all required actions",
        "Getting action download info",
        f"Download action repository 'actions/checkout@v4' (SHA:{CHECKOUT_SHA})",
        f"Complete job name: {job.name}",
    ]


def _checkout_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    return [
        *_group(
            "Run actions/checkout@v4",
            "with:",
            f"  repository: {ctx.repo}",
            "  token: ***",
            "  ssh-strict: true",
            "  persist-credentials: true",
            "  clean: true",
            "  fetch-depth: 1",
        ),
        f"Syncing repository: {ctx.repo}",
        *_group("Getting Git version info", "[command]/usr/bin/git version", "git version 2.49.0"),
        f"[command]/usr/bin/git init /home/runner/work/{ctx.repo.split('/')[1]}/{ctx.repo.split('/')[1]}",
        f"[command]/usr/bin/git remote add origin https://github.com/{ctx.repo}",
        *_group(
            "Fetching the repository",
            "[command]/usr/bin/git -c protocol.version=2 fetch --no-tags --prune --no-recurse-submodules "
            f"--depth=1 origin +{ctx.head_sha}:refs/remotes/origin/{ctx.head_branch}",
            f" * [new ref]         {ctx.head_sha} -> origin/{ctx.head_branch}",
        ),
        *_group(
            "Checking out the ref",
            f"[command]/usr/bin/git checkout --progress --force -B {ctx.head_branch} "
            f"refs/remotes/origin/{ctx.head_branch}",
            f"Switched to a new branch '{ctx.head_branch}'",
        ),
        "[command]/usr/bin/git log -1 --format=%H",
        ctx.head_sha,
    ]


def _login_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    return [
        *_group(
            "Run docker/login-action@v3",
            "with:",
            "  registry: ghcr.io",
            f"  username: {ctx.actor}",
            "  password: ***",
            "  ecr: auto",
            "  logout: true",
        ),
        "Logging into ghcr.io...",
        "Login Succeeded!",
    ]


def _digest(rng: random.Random) -> str:
    return f"sha256:{rng.getrandbits(256):064x}"


def _build_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    stack = ctx.target.stack
    image = f"{ctx.target.image}:{ctx.sha}"
    command = f"pack build {image} --builder {BUILDER} --path . --pull-policy if-not-present"
    head = [
        *_group(f"Run {command}", command, "shell: /usr/bin/bash -e {0}"),
        "24: Pulling from heroku/builder",
        f"Digest: {_digest(rng)}",
        "Status: Downloaded newer image for heroku/builder:24",
        "===> ANALYZING",
        f'Image with name "{image}" not found',
        "===> DETECTING",
    ]
    if ctx.scenario == "buildpack_no_procfile":
        return [
            *head,
            "======== Output: heroku/procfile@4.2.1 ========",
            "No Procfile found in the app root (/workspace): nothing declares the `web` process.",
            "======== Results ========",
            f"pass: {stack.buildpack}@{stack.buildpack_version}",
            "fail: heroku/procfile@4.2.1",
            "ERROR: No buildpack groups passed detection.",
            "ERROR: Please check that you are running against the correct path.",
            "ERROR: failed to detect: no buildpacks participating",
            "ERROR: failed to build: executing lifecycle: failed with status code: 20",
        ]
    layers = rng.randrange(4, 9)
    return [
        *head,
        "2 of 3 buildpacks participating",
        f"{stack.buildpack} {stack.buildpack_version}",
        "heroku/procfile 4.2.1",
        "===> RESTORING",
        "===> BUILDING",
        "",
        f"## {stack.buildpack.split('/')[1].capitalize()}",
        "",
        f"- {stack.runtime_line}",
        "- Installing dependencies",
        f"  - Resolved {rng.randrange(40, 180)} packages",
        f"  - Done ({rng.uniform(8, 40):.1f}s)",
        "- Done (finished in " + f"{rng.uniform(20, 90):.1f}s)",
        "",
        "## Procfile Buildpack",
        "",
        "- Processes",
        "  - Detecting processes from `Procfile`",
        "  - Done (finished in < 0.1s)",
        "",
        "===> EXPORTING",
        *(f"Adding layer '{stack.buildpack}:layer-{index}'" for index in range(layers)),
        "Adding layer 'buildpacksio/lifecycle:process-types'",
        "Adding label 'io.buildpacks.lifecycle.metadata'",
        "Adding label 'io.buildpacks.build.metadata'",
        "Adding label 'io.buildpacks.project.metadata'",
        f"Adding label 'service' = '{ctx.target.service}'",
        "Setting default process type 'web'",
        f"Saving {image}...",
        f"*** Images ({_digest(rng)[:19]}):",
        f"      {image}",
        f"Successfully built image '{image}'",
    ]


def _push_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    image = f"{ctx.target.image}:{ctx.sha}"
    layers = [f"{rng.getrandbits(48):012x}" for _ in range(rng.randrange(4, 8))]
    lines = [
        *_group(f"Run docker push {image}", f"docker push {image}", "shell: /usr/bin/bash -e {0}"),
        f"The push refers to repository [{ctx.target.image}]",
        *(f"{layer}: Preparing" for layer in layers),
    ]
    if ctx.scenario == "ghcr_push_denied":
        return [
            *lines,
            *(f"{layer}: Waiting" for layer in layers[1:]),
            "denied: permission_denied: write_package",
        ]
    return [
        *lines,
        *(f"{layer}: Pushed" for layer in layers),
        f"{ctx.sha}: digest: {_digest(rng)} size: {rng.randrange(1200, 4200)}",
    ]


def _ruby_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    return [
        *_group("Run ruby/setup-ruby@v1", "with:", "  ruby-version: 3.4", "  bundler-cache: false"),
        "Modifying PATH",
        "Downloading Ruby",
        "https://github.com/ruby/ruby-builder/releases/download/toolcache/ruby-3.4.4-ubuntu-24.04.tar.gz",
        f"Took   {rng.uniform(0.6, 2.5):.2f} seconds",
        "Extracting  Ruby",
        f"Took   {rng.uniform(0.3, 1.2):.2f} seconds",
    ]


def _gem_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    command = f"gem install kamal -v {KAMAL_VERSION} --no-document"
    gems = (
        "net-ssh-7.3.0",
        "sshkit-1.24.0",
        "thor-1.3.2",
        "dotenv-3.1.8",
        "zeitwerk-2.7.2",
        "ed25519-1.4.0",
    )
    return [
        *_group(f"Run {command}", command, "shell: /usr/bin/bash -e {0}"),
        *(f"Fetching {gem}.gem" for gem in gems),
        f"Fetching kamal-{KAMAL_VERSION}.gem",
        *(f"Successfully installed {gem}" for gem in gems),
        f"Successfully installed kamal-{KAMAL_VERSION}",
        f"{len(gems) + 1 + rng.randrange(8, 20)} gems installed",
    ]


def _ssh_agent_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    return [
        *_group("Run webfactory/ssh-agent@v0.9.1", "with:", "  ssh-private-key: ***"),
        "Adding GitHub.com keys to /home/runner/.ssh/known_hosts",
        "Starting ssh-agent",
        f"SSH_AUTH_SOCK=/tmp/ssh-{rng.getrandbits(40):010x}/agent.{rng.randrange(2000, 3000)}",
        f"SSH_AGENT_PID={rng.randrange(2000, 3000)}",
        "Adding private key(s) to agent",
        "Identity added: (stdin) (deploy@acme)",
        "Key(s) added:",
        f"256 SHA256:{rng.getrandbits(256):064x}"[:54] + " deploy@acme (ED25519)",
    ]


def _post_ssh_agent_text(
    rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan
) -> list[str]:
    return [
        "Post job cleanup.",
        "Stopping SSH agent",
        "unset SSH_AUTH_SOCK;",
        "unset SSH_AGENT_PID;",
    ]


def _post_checkout_text(
    rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan
) -> list[str]:
    return [
        "Post job cleanup.",
        "[command]/usr/bin/git version",
        "git version 2.49.0",
        "[command]/usr/bin/git config --local --name-only --get-regexp core\\.sshCommand",
        "[command]/usr/bin/git config --local --name-only --get-regexp "
        "http\\.https\\:\\/\\/github\\.com\\/\\.extraheader",
        "http.https://github.com/.extraheader",
        "[command]/usr/bin/git config --local --unset-all http.https://github.com/.extraheader",
    ]


def _complete_text(rng: random.Random, ctx: RunContext, step: StepPlan, job: JobPlan) -> list[str]:
    return ["Cleaning up orphan processes"]


_STEP_TEXT: dict[str, Callable[[random.Random, RunContext, StepPlan, JobPlan], list[str]]] = {
    "setup": _setup_text,
    "checkout": _checkout_text,
    "login": _login_text,
    "build": _build_text,
    "push": _push_text,
    "ruby": _ruby_text,
    "gem": _gem_text,
    "ssh_agent": _ssh_agent_text,
    "post_ssh_agent": _post_ssh_agent_text,
    "post_checkout": _post_checkout_text,
    "complete": _complete_text,
}
