"""Confirm dialogs for the destructive actions: roll back / deploy a SHA, and cancel.

Each opens at once and runs its checks (the preflight) in a worker, so the facts appear as soon
as they are known; confirming is possible only once they are, and never when a check refuses.
`y`/`enter` confirm, `n`/`escape` abort. Every remote value is appended as plain text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, TypeVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from vmkit_tui.actions.cancel import CancelPreflight
from vmkit_tui.actions.preflight import Preflight
from vmkit_tui.config import RollbackStrategy
from vmkit_tui.domain.eligibility import Eligibility
from vmkit_tui.domain.models import is_sha_prefix
from vmkit_tui.domain.text import sanitise
from vmkit_tui.frontends.present import format_age
from vmkit_tui.sources.github.results import ImageState

Checked = TypeVar("Checked")


class ConfirmScreen(ModalScreen[bool], Generic[Checked]):
    """A title, the checked facts (filled in when `check()` returns), and y/n."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "confirm", "Confirm", id="confirm.yes"),
        Binding("n,escape", "abort", "Abort", id="confirm.no"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "confirm--label",
        "confirm--bad",
        "confirm--warn",
        "confirm--strong",
    }

    def __init__(self, title: str, check: Callable[[], Awaitable[Checked]]) -> None:
        super().__init__()
        self.title_text = title
        self.check = check
        self.checked: Checked | None = None
        self.refusal: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(sanitise(self.title_text), style="bold"), id="confirm-title")
            with VerticalScroll(id="confirm-body"):
                yield Static(Text("Checking…"), id="confirm-facts")
            yield Static(Text("y/enter: confirm   n/escape: abort"), id="confirm-keys")

    def on_mount(self) -> None:
        self._run_check()

    @work(exclusive=True, exit_on_error=False)
    async def _run_check(self) -> None:
        try:
            checked = await self.check()
        except Exception as error:  # any failure is shown, and nothing was sent
            self.refusal = sanitise(str(error)) or type(error).__name__
            self.query_one("#confirm-facts", Static).update(
                Text(f"✗ {self.refusal}", self.style("bad"))
            )
            self.query_one("#confirm-keys", Static).update(Text("n/escape: close"))
            return
        self.checked = checked
        self.refusal = self.refusal_of(checked)
        self.query_one("#confirm-facts", Static).update(self.describe(checked))
        if self.refusal:
            self.query_one("#confirm-keys", Static).update(
                Text("n/escape: close (this action is refused)")
            )
        self.refresh_bindings()

    def style(self, name: str) -> Style:
        return self.get_component_rich_style(f"confirm--{name}", partial=True)

    def refusal_of(self, checked: Checked) -> str | None:
        return None

    def describe(self, checked: Checked) -> Text:
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm":
            return True if self.checked is not None and self.refusal is None else None
        return True

    def action_confirm(self) -> None:
        if self.checked is not None and self.refusal is None:
            self.dismiss(True)

    def action_abort(self) -> None:
        self.dismiss(False)


class RollbackScreen(ConfirmScreen[Preflight]):
    """The preflight of a rollback or of deploying a SHA."""

    def refusal_of(self, checked: Preflight) -> str | None:
        return checked.refusal(force=False)

    def describe(self, checked: Preflight) -> Text:
        target = checked.target
        text = Text()

        label, bad, warn, strong = (self.style(name) for name in ("label", "bad", "warn", "strong"))

        def line(name: str, value: str, style: Style | str = "") -> None:
            text.append(f"{name:<11}", label)
            text.append(sanitise(value), style)
            text.append("\n")

        line("Target", f"{target.short_sha}  {target.sha}", strong)
        if target.message:
            line("Commit", sanitise(target.message)[:200])
        if target.deploy is not None:
            status = target.status.value if target.status else "unknown"
            line("Deployed", f"{format_age(checked.target_age)} by {target.deployed_by} ({status})")
        live = checked.live_sha
        line(
            "Live now", f"{live[:7]}  {live}" if live else "unknown (no succeeded deploy recorded)"
        )
        image = checked.image_check
        image_text = {
            ImageState.PRESENT: f"{checked.image}:{target.short_sha} is in GHCR",
            ImageState.MISSING: checked.image_gone,
            ImageState.CANNOT_CHECK: f"cannot check: {image.reason}",
        }[image.state]
        line("Image", image_text, bad if image.state is ImageState.MISSING else "")
        eligibility = checked.eligibility  # the same facts as the row's Back column
        line("Back to it", f"{eligibility.state.value}: {eligibility.reason}")
        strategy = checked.strategy.value
        if checked.strategy is RollbackStrategy.KAMAL_SSH:
            strategy += (
                " (kamal rollback: the container is kept)"
                if checked.fast_path
                else " (kamal deploy --skip-push: pulls the image)"
                if eligibility.state in (Eligibility.IN_REGISTRY, Eligibility.GONE)
                else " (kamal rollback, else deploy --skip-push)"
            )
        line("Strategy", strategy)
        migrations = checked.migrations
        if live and not (migrations.files or migrations.cannot_check or migrations.truncated):
            line("Migrations", "no migrations between the two")  # else a warning names them
        for blocker in checked.blockers:
            text.append("✗ ", bad)
            text.append(sanitise(blocker.message), strong)
            text.append("\n")
        for warning in checked.warnings:
            text.append("! ", warn)
            text.append(sanitise(warning))
            text.append("\n")
        return text


class OverrideScreen(ConfirmScreen[str]):
    """A teammate's deploy holds the environment: go past it? (the deploy records that it did)"""

    def describe(self, checked: str) -> Text:
        text = Text()
        text.append("✗ ", self.style("bad"))
        text.append(sanitise(checked), self.style("strong"))
        text.append("\n\nConfirming sends yours anyway; the deploy records what it overrode.")
        return text


class CancelScreen(ConfirmScreen[CancelPreflight]):
    """What cancelling a running deploy will (and may not) do."""

    def refusal_of(self, checked: CancelPreflight) -> str | None:
        return checked.refusal

    def describe(self, checked: CancelPreflight) -> Text:
        record = checked.record
        label, bad, warn, strong = (self.style(name) for name in ("label", "bad", "warn", "strong"))
        text = Text()
        text.append("Deploy  ", label)
        deploy = record.deploy
        text.append(
            sanitise(f"{deploy.short_sha} on {deploy.environment} ({record.status.value})") + "\n"
        )
        if record.title:
            text.append("Message ", label)
            text.append(sanitise(record.title)[:200] + "\n")
        if checked.kamal_step:
            text.append("Step    ", label)
            text.append(sanitise(checked.kamal_step) + "\n")
        if checked.refusal:
            text.append("✗ ", bad)
            text.append(sanitise(checked.refusal) + "\n")
        for warning in checked.warnings:
            text.append("! ", warn)
            text.append(sanitise(warning) + "\n")
        if checked.force_sensible:
            text.append(
                "The cancel asked for earlier has not stopped the run: confirming now force-cancels it.\n",
                strong,
            )
        return text


class ShaPrompt(ModalScreen[str | None]):
    """Ask for a commit SHA to deploy: full (any commit whose image is in GHCR), or a unique
    prefix of 7+ hex of one in the history (resolved by the preflight)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "abort", "Abort", id="sha.abort")]

    def __init__(self, repo: str, environment: str) -> None:
        super().__init__()
        self.where = f"{repo} / {environment}"

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(
                Text(sanitise(f"Deploy a SHA to {self.where}"), style="bold"), id="confirm-title"
            )
            yield Input(
                placeholder="commit SHA: 7+ hex of one in the history, or all 40",
                id="sha-input",
                max_length=40,
            )
            yield Static(Text("enter: check it   escape: abort"), id="confirm-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if is_sha_prefix(value):
            self.dismiss(value)
        else:
            self.query_one("#confirm-keys", Static).update(
                Text("✗ a SHA is 7 to 40 lowercase hex characters (all 40 beyond the history)")
            )

    def action_abort(self) -> None:
        self.dismiss(None)
