"""What a rollback (or a deploy of any SHA) would do, checked before anything is sent (pure).

`DeployActions.preflight` gathers the facts (the target, what is live now, whether the image is
still in GHCR, which migrations lie between the two); this module turns them into what the
user must read before confirming, the way Heroku, Fly and Render word their rollbacks:

- refusals: nothing to do (the target is live already), a commit that does not exist, an image
  gone from GHCR (the rollback would fail at the pull: refused unless forced);
- warnings: the target did not succeed, migrations landed since the target (a rollback never
  rolls back the database), the current secrets and environment are used, a deploy is already
  running, and every check that could not be made ("cannot check: why").

Remote text (commit messages, error reasons) is data: callers sanitise it for the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.eligibility import NOT_CHECKED, Eligibility, RollbackEligibility
from vmkit_tui.domain.models import DeployRecord, Status
from vmkit_tui.domain.overview import newest_first, summarize
from vmkit_tui.sources.github.results import ImageCheck, ImageState

__all__ = [
    "Blocker",
    "MigrationCheck",
    "Preflight",
    "TargetInfo",
    "default_rollback_target",
    "in_flight_refusal",
    "live_deploy",
]

MIGRATIONS_SHOWN = 5  # migration files named in the warning (the rest are counted)


def _sentence(text: str) -> str:
    """`text` ending like a sentence (reasons from errors usually lack the full stop)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def live_deploy(records: Sequence[DeployRecord]) -> DeployRecord | None:
    """The deploy serving traffic now: the newest that succeeded (overview's definition)."""
    if not records:
        return None
    first = records[0].deploy
    return summarize(first.repo, first.environment, records).live


def default_rollback_target(records: Sequence[DeployRecord]) -> DeployRecord | None:
    """The last succeeded deploy older than the live SHA's first deploy (Heroku's "last
    eligible release"): what `r` on the live deploy, or a rollback without a target, goes back
    to. Never forward: when the live deploy is itself a rollback (A, B, C, then back to B),
    the default is A, not C; a newer version is deployed only when named."""
    live = live_deploy(records)
    if live is None:
        return None
    ordered = newest_first(records)
    live_sha = live.deploy.sha
    first = max(i for i, r in enumerate(ordered) if r.deploy.sha == live_sha)
    return next((r for r in ordered[first + 1 :] if r.status is Status.SUCCEEDED), None)


def in_flight_refusal(record: DeployRecord) -> str:
    """Why nothing else may start while `record`, an action we started, is still running."""
    return (
        f"{record.title or 'A deploy'} (deploy {record.id}, {record.status.value}, by "
        f"{record.deploy.actor}) is still in flight: wait for it to finish, or cancel it first."
    )


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """The version to go to. `deploy`: the known deploy it was (None for a bare SHA);
    `commit_found`: whether GitHub has the commit (None: could not check, `commit_problem`
    says why); `message`: the commit message's first line, else the deploy's title."""

    sha: str
    deploy: DeployRecord | None = None
    message: str = ""
    commit_found: bool | None = None
    commit_problem: str = ""

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def status(self) -> Status | None:
        return self.deploy.status if self.deploy else None

    @property
    def deployed_at(self) -> datetime | None:
        return self.deploy.deploy.created_at if self.deploy else None

    @property
    def deployed_by(self) -> str | None:
        return self.deploy.deploy.actor if self.deploy else None


@dataclass(frozen=True, slots=True)
class MigrationCheck:
    """Migration files changed between the target and the live version (compare target...live).
    `compared`: GitHub's comparison status (ahead: the target is older, as a rollback expects;
    behind: it is newer; diverged; identical). `cannot_check`: why there is no answer."""

    files: tuple[str, ...] = ()
    compared: str = ""
    truncated: bool = False
    cannot_check: str = ""


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why an action is refused; `forcible`: `force=True` sends it anyway."""

    message: str
    forcible: bool


@dataclass(frozen=True, slots=True)
class Preflight:
    """Everything checked before a rollback or deploy of `target` on one environment."""

    repo: str
    environment: str
    strategy: RollbackStrategy
    image: str  # the repo's image (ghcr.io/owner/name), tagged with full SHAs
    target: TargetInfo
    live: DeployRecord | None  # the deploy serving traffic now, if the history knows it
    image_check: ImageCheck
    migrations: MigrationCheck
    checked_at: datetime
    eligibility: RollbackEligibility = NOT_CHECKED  # kept on the hosts? (the rows' facts)
    active: DeployRecord | None = None  # a deploy still in progress on this environment
    in_flight: DeployRecord | None = None  # an action we started there, still running: refused
    require_commit: bool = False  # a bare SHA must be a commit GitHub knows (deploy_sha)

    @property
    def live_sha(self) -> str | None:
        return self.live.deploy.sha if self.live else None

    @property
    def target_age(self) -> timedelta | None:
        deployed = self.target.deployed_at
        return self.checked_at - deployed if deployed is not None else None

    @property
    def image_gone(self) -> str:
        """What a missing image means: deleted since a succeeded deploy of it (so it was built),
        else no image for this commit at all (never built, or deleted: GHCR cannot tell)."""
        ref = f"{self.image}:{self.target.short_sha}"
        if self.target.status is Status.SUCCEEDED:
            return f"{ref} is no longer in GHCR (deleted since it was deployed)"
        return f"no image for this commit in GHCR ({ref})"

    @property
    def blockers(self) -> tuple[Blocker, ...]:
        target, env = self.target, self.environment
        found: list[Blocker] = []
        if self.in_flight is not None:
            found.append(Blocker(in_flight_refusal(self.in_flight), False))
        if target.sha == self.live_sha:
            found.append(
                Blocker(f"Nothing to do: {target.short_sha} is already live on {env}.", False)
            )
        if target.commit_found is False:
            found.append(Blocker(f"{self.repo} has no commit {target.sha}.", False))
        elif self.require_commit and target.commit_found is None:
            found.append(
                Blocker(
                    f"Cannot check that {self.repo} has the commit {target.sha}: "
                    f"{_sentence(target.commit_problem)}",
                    True,
                )
            )
        if (
            self.image_check.state is ImageState.MISSING
            and target.commit_found is not False
            and not self.fast_path
        ):
            retained = (
                " With kamal-ssh, a container of it still kept on the hosts would be used first."
                if self.strategy is RollbackStrategy.KAMAL_SSH
                and self.eligibility.state is Eligibility.UNKNOWN
                else ""
            )
            found.append(
                Blocker(
                    f"{'The image' if target.status is Status.SUCCEEDED else 'There is'} "
                    f"{self.image_gone}, so the deploy would fail when it pulls it."
                    " Pick a deploy whose image still exists, or rebuild that commit."
                    f"{retained}",
                    True,
                )
            )
        return tuple(found)

    @property
    def fast_path(self) -> bool:
        """kamal-ssh with the target's container on every host: `kamal rollback`, no pull."""
        return (
            self.strategy is RollbackStrategy.KAMAL_SSH
            and self.eligibility.state is Eligibility.RETAINED
        )

    def refusal(self, force: bool = False) -> str | None:
        """Why the action is refused (None: it may go); `force` overrides what it can."""
        for blocker in self.blockers:
            if not (force and blocker.forcible):
                return blocker.message
        return None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What to read before confirming, most important first (refusals are separate)."""
        target, env = self.target, self.environment
        found: list[str] = []
        status = target.status
        if status is not None and status is not Status.SUCCEEDED:
            state = f"is still {status.value}" if status.is_active else f"ended {status.value}"
            found.append(
                f"The deploy of {target.short_sha} you picked {state}: going back to it may "
                "fail the same way."
            )
        found += self._migration_warnings()
        if self.fast_path and self.image_check.state is ImageState.MISSING:
            found.append(
                f"{self.image_gone}: the rollback boots the container still kept on every host "
                "(kamal rollback); once that is pruned, this version needs a rebuild."
            )
        elif self.image_check.state is ImageState.CANNOT_CHECK:
            found.append(
                f"Cannot check that the image {self.image}:{target.short_sha} is still in GHCR: "
                f"{_sentence(self.image_check.reason)} If it is gone, the deploy fails at the pull."
            )
        found.append(
            "The current secrets and environment variables are used, not the ones "
            f"{target.short_sha} ran with."
        )
        active = self.active
        if active is not None and self.in_flight is None:  # else refused, saying so
            found.append(
                f"Deploy {active.id} ({active.deploy.short_sha}) is {active.status.value} on "
                f"{env}: this one waits for it, or fails if it holds Kamal's deploy lock."
            )
        return tuple(found)

    def _migration_warnings(self) -> list[str]:
        check, target = self.migrations, self.target
        live = self.live_sha[:7] if self.live_sha else "the live version"
        remedy = (
            "A rollback restores code and image, never the database: the older code will run "
            "against the newer schema. If a migration was destructive (dropped or renamed a "
            "column or table, tightened a constraint), apply its down-migration by hand "
            "first; otherwise keep migrations additive and deploy them separately from code, "
            "compatible with the previous version."
        )
        if check.cannot_check:
            return [f"Cannot check for migrations: {_sentence(check.cannot_check)} {remedy}"]
        found: list[str] = []
        if check.files:
            shown = ", ".join(check.files[:MIGRATIONS_SHOWN])
            more = len(check.files) - MIGRATIONS_SHOWN
            extra = f" and {more} more" if more > 0 else ""
            found.append(
                f"{len(check.files)} migration file(s) changed between {target.short_sha} and "
                f"{live}: {shown}{extra}. {remedy}"
            )
        if check.truncated:
            found.append(
                "GitHub listed only the first 300 changed files between "
                f"{target.short_sha} and {live}: migrations beyond them are not shown."
            )
        if check.compared == "diverged":
            found.append(
                f"{target.short_sha} is not an ancestor of {live} (the branch was rewritten?): "
                "files are listed from where the two histories part."
            )
        elif check.compared == "behind":
            found.append(f"{target.short_sha} is newer than {live}: this rolls forward.")
        return found
