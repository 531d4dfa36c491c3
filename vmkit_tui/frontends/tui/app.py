"""The vmkit-tui application: the dashboard's key bindings and the actions behind them.

Navigation, search and log controls act on the panes of `Dashboard`; rollback, deploy and
cancel ask for confirmation in a dialog first and are hidden in read-only mode.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType, Keymap
from textual.widgets import DataTable

from vmkit_tui.actions.actor import local_actor
from vmkit_tui.actions.errors import ClaimHeld
from vmkit_tui.domain.models import Trigger
from vmkit_tui.frontends.present import clean
from vmkit_tui.frontends.tui.dashboard import Dashboard
from vmkit_tui.frontends.tui.diagnosis import DiagnosisBanner
from vmkit_tui.frontends.tui.log_pane import LogPane
from vmkit_tui.frontends.tui.tables import NavTable

if TYPE_CHECKING:
    from textual.command import Provider
    from textual.screen import ModalScreen

    from vmkit_tui.actions.cancel import CancelPreflight
    from vmkit_tui.actions.preflight import Preflight
    from vmkit_tui.frontends.tui.filter import FilterScreen

STYLES = Path(__file__).resolve().parent / "styles"

PANES = ("#repos", "#environments", "#deploys", "#log-lines")
_WHY_ROLLBACK, _WHY_CANCEL = "deploy.rollback.refused", "deploy.cancel.refused"
_ANSWERED = {"deploy.rollback": _WHY_ROLLBACK, "deploy.cancel": _WHY_CANCEL}


def _deploy_commands() -> type[Provider]:
    """The palette provider, imported when the palette first opens (start-up stays lean)."""
    from vmkit_tui.frontends.tui.commands import DeployCommands

    return DeployCommands


class VmkitApp(Dashboard):
    TITLE = "vmkit-tui"
    CSS_PATH: ClassVar = [STYLES / "app.tcss"]
    # Ours only: Textual's Theme, Screenshot and Keys commands are not for these users.
    COMMANDS: ClassVar = {_deploy_commands}
    # Textual types this as an instance attribute (its ClassVar is inside a union)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("tab", "pane(1)", "Next pane", show=False, id="pane.next"),
        Binding("shift+tab", "pane(-1)", "Previous pane", show=False, id="pane.previous"),
        Binding("h", "pane(-1)", "Pane left", show=False, id="pane.left"),
        Binding("l", "pane(1)", "Pane right / log", show=False, id="pane.right"),
        Binding("enter", "drill", "Open", id="nav.open"),
        Binding("slash", "search", "Search/filter", id="nav.search"),
        Binding("n", "search_again(True)", "Next match", show=False, id="log.next"),
        Binding("N", "search_again(False)", "Previous match", show=False, id="log.previous"),
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
        Binding("s", "cycle_source", "Source", id="log.source"),
        Binding("F", "toggle_fold", "Fold groups", show=False, id="log.fold"),
        Binding("d", "jump_diagnosis", "Diagnosis", id="deploy.diagnosis"),
        Binding(
            "D", "toggle_diagnosis", "More/less diagnosis", show=False, id="deploy.diagnosis_more"
        ),
        Binding("o", "open_run", "Open run", id="deploy.open_run"),
        Binding("y", "copy_sha", "Copy SHA", id="deploy.copy_sha"),
        Binding("z", "zoom", "Zoom", id="pane.zoom"),
        Binding("r", "rollback", "Roll back", id="deploy.rollback"),
        Binding("c", "cancel_deploy", "Cancel", id="deploy.cancel"),
        Binding("a", "audit", "Audit trail", show=False, id="deploy.audit"),
        Binding("at", "calls", "Command log", show=False, id="app.calls"),
        # Tried only when the binding above cannot act: a refused key says why, never nothing.
        Binding("r", "refused('rollback')", "Roll back: why not", show=False, id=_WHY_ROLLBACK),
        Binding("c", "refused('cancel_deploy')", "Cancel: why not", show=False, id=_WHY_CANCEL),
    ]

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_drill()

    # --- actions -------------------------------------------------------------------------------

    def set_keymap(self, keymap: Keymap) -> None:
        """A remapped `r` / `c` keeps saying why when refused: its fallback moves with it."""
        moved = {_ANSWERED[key]: keys for key, keys in keymap.items() if key in _ANSWERED}
        super().set_keymap({**keymap, **moved})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        record = self.selected_record
        if action == "refused":
            return self._refusal(str(parameters[0])) is not None
        if action in ("rollback", "cancel_deploy"):
            if self.readonly:
                return False  # hidden: read-only mode offers no destructive action
            return None if self._refusal(action) else True
        if action == "deploy_sha":
            return False if self.readonly else (True if self.environment else None)
        if action == "audit":
            return True if record else None
        if action == "open_run":
            return True if record and record.run_url else None
        if action == "copy_sha":
            return True if record else None
        if action in ("jump_diagnosis", "toggle_diagnosis"):
            return True if record and record.diagnosis else None
        if action in ("toggle_follow", "cycle_source", "toggle_fold"):
            return True if self.deploy_id else None
        if action == "search_again":
            return True if self.main.query_one(LogPane).search_term else None
        return True

    def action_pane(self, step: int) -> None:
        focused = self.focused
        ids = [self.main.query_one(selector) for selector in PANES]
        index = next((i for i, w in enumerate(ids) if w is focused), -1)
        ids[(index + step) % len(ids)].focus()

    def action_drill(self) -> None:
        focused = self.focused
        if focused is self.main.query_one("#repos"):
            self.main.query_one("#environments").focus()
        elif focused is self.main.query_one("#environments"):
            self.main.query_one("#deploys").focus()
        elif focused is self.main.query_one("#deploys"):
            self.main.query_one("#log-lines").focus()

    def action_search(self) -> None:
        focused = self.focused
        if isinstance(focused, NavTable):
            self.push_screen(_filter_prompt(focused))
        else:
            self.main.query_one(LogPane).open_search()

    def action_search_again(self, forward: bool) -> None:
        self.main.query_one(LogPane).search_again(forward)

    def action_toggle_follow(self) -> None:
        lines = self.main.query_one(LogPane).lines
        lines.follow = not lines.follow

    def action_toggle_fold(self) -> None:
        pane = self.main.query_one(LogPane)
        pane.folded = not pane.folded

    def action_cycle_source(self) -> None:
        self.main.query_one(LogPane).cycle_source()

    def action_jump_diagnosis(self) -> None:
        record = self.selected_record
        if record is None or record.diagnosis is None:
            return
        diagnosis = record.diagnosis
        pane = self.main.query_one(LogPane)
        if diagnosis.line_number is not None:
            pane.jump_to_line(diagnosis.line_number)
        else:  # an older record without the line's number: search for its text
            pane.lines.start_search(diagnosis.line[:80])
        pane.lines.focus()

    def action_toggle_diagnosis(self) -> None:
        banner = self.main.query_one(DiagnosisBanner)
        banner.expanded = not banner.expanded

    def action_open_run(self) -> None:
        record = self.selected_record
        if record and record.run_url:
            self._open_run(record.run_url)

    @work(group="browser", exclusive=True, exit_on_error=False)
    async def _open_run(self, url: str) -> None:
        from vmkit_tui.frontends.tui.browser import RunUrlScreen, open_in_browser

        if await asyncio.to_thread(open_in_browser, url):
            self.notify("opened the run in your browser", markup=False)
        else:  # over SSH, say: there is no browser to open, so show where to go
            self.push_screen(RunUrlScreen(url))

    def action_copy_sha(self) -> None:
        record = self.selected_record
        if record:
            self.copy_to_clipboard(record.deploy.sha)
            self.notify(f"copied {record.deploy.sha}", markup=False)

    # --- destructive actions (hidden in read-only mode) ------------------------------------------

    def _refusal(self, action: str) -> str | None:
        """Why `r` (rollback) or `c` (cancel_deploy) cannot act now; None: it can."""
        record = self.selected_record
        if self.readonly:
            verb = "rolling back" if action == "rollback" else "cancelling"
            return f"Read-only mode (--readonly): {verb} is off."
        if record is None:
            return "Select a deploy first."
        if action == "cancel_deploy" and not record.status.is_active:
            return f"Nothing to cancel: {record.deploy.short_sha} has {record.status.value}."
        return None

    def action_refused(self, action: str) -> None:
        refusal = self._refusal(action)
        if refusal:
            title = "Not rolled back" if action == "rollback" else "Not cancelled"
            self.notify(refusal, title=title, severity="warning", markup=False)

    def action_rollback(self) -> None:
        """`r` on a deploy: roll back to it; on the live deploy, to the last good one before it."""
        record = self.selected_record
        if self.readonly or record is None:
            return
        from vmkit_tui.actions.preflight import live_deploy

        records = self.overview.deploys.get((record.deploy.repo, record.deploy.environment), [])
        live = live_deploy(records)
        target = None if live is not None and live.id == record.id else record.id
        self._rollback(record.deploy.repo, record.deploy.environment, target, None)

    def action_deploy_sha(self) -> None:
        """Palette: deploy any SHA (beyond the kept history) to the selected environment."""
        if self.readonly or not (self.repo and self.environment):
            return
        self._ask_sha(self.repo, self.environment)

    @work(group="actions", exit_on_error=False)
    async def _ask_sha(self, repo: str, environment: str) -> None:
        from vmkit_tui.frontends.tui.confirm import ShaPrompt

        sha = await self.push_screen_wait(ShaPrompt(repo, environment))
        if sha:
            self._rollback(repo, environment, None, sha)

    @work(group="actions", exit_on_error=False)
    async def _rollback(
        self, repo: str, environment: str, target: str | None, sha: str | None
    ) -> None:
        from vmkit_tui.frontends.tui.confirm import RollbackScreen

        service = self.service
        checked: list[Preflight] = []

        async def check() -> Preflight:
            preflight = await (await service.actions()).preflight(repo, environment, sha or target)
            checked.append(preflight)
            return preflight

        title = f"Deploy {sha[:7]} to {environment}?" if sha else f"Roll back {environment}?"
        if not await self.push_screen_wait(RollbackScreen(title, check)):
            return
        self._select_new = (repo, environment)
        try:
            try:
                await self._send_rollback(repo, environment, target, sha, checked[-1], False)
            except ClaimHeld as held:  # a teammate's deploy is in flight: go past it?
                if not await self.push_screen_wait(self._override(held)):
                    return
                await self._send_rollback(repo, environment, target, sha, checked[-1], True)
        except (
            Exception
        ) as error:  # refused or failed: say why (the history says what was recorded)
            self.notify(
                clean(error),
                title="Not rolled back",
                severity="error",
                markup=False,
                timeout=15,
            )

    async def _send_rollback(
        self,
        repo: str,
        environment: str,
        target: str | None,
        sha: str | None,
        preflight: Preflight,
        force: bool,
    ) -> None:
        actions = await self.service.actions()
        if sha:
            await actions.deploy_sha(
                repo, environment, sha, trigger=Trigger.MANUAL, actor=local_actor(), force=force
            )
        else:
            await actions.rollback(
                repo,
                environment,
                target,
                trigger=Trigger.MANUAL,
                actor=local_actor(),
                preflight=preflight,
                force=force,
            )

    @staticmethod
    def _override(held: Exception) -> ModalScreen[bool]:
        from vmkit_tui.frontends.tui.confirm import OverrideScreen

        async def why() -> str:
            return str(held)

        return OverrideScreen("Go past a teammate's deploy?", why)

    def action_cancel_deploy(self) -> None:
        record = self.selected_record
        if self.readonly or record is None or not record.status.is_active:
            return
        self._cancel(record.id)

    @work(group="actions", exit_on_error=False)
    async def _cancel(self, deploy_id: str) -> None:
        from vmkit_tui.frontends.tui.confirm import CancelScreen

        service = self.service
        checked: list[CancelPreflight] = []

        async def check() -> CancelPreflight:
            preflight = await (await service.actions()).cancel_preflight(deploy_id)
            checked.append(preflight)
            return preflight

        if not await self.push_screen_wait(CancelScreen("Cancel this deploy?", check)):
            return
        # asked again after a cancel that did not stop the run: force-cancel this time
        force = bool(checked) and checked[-1].force_sensible
        try:
            result = await (await service.actions()).cancel(
                deploy_id, trigger=Trigger.MANUAL, actor=local_actor(), force=force
            )
        except Exception as error:  # refused or failed: say why
            self.notify(
                clean(error),
                title="Not cancelled",
                severity="error",
                markup=False,
                timeout=15,
            )
            return
        lines = [result.message, *result.warnings]
        if result.lock is not None:
            lines.append(result.lock.message)
        self.notify(
            clean(" · ".join(line for line in lines if line)),
            title="Cancel",
            markup=False,
            timeout=15,
        )

    def action_audit(self) -> None:
        record = self.selected_record
        if record is not None:
            from vmkit_tui.frontends.tui.audit import AuditScreen

            self.push_screen(AuditScreen(record))

    def action_calls(self) -> None:
        """`@`: every GitHub request and SSH command of this session, as it happens."""
        from vmkit_tui.frontends.tui.calls import CallsScreen

        self.push_screen(CallsScreen(self.service.calls, self.service.call_file))

    def action_zoom(self) -> None:
        """Give the focused pane the whole screen (again to restore): small terminals."""
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        focused = self.focused
        if focused is None:
            return
        target = (
            self.main.query_one(LogPane) if focused.id in ("log-lines", "log-search") else focused
        )
        self.screen.maximize(target, container=False)

    def action_help(self) -> None:
        from vmkit_tui.frontends.tui.help import HelpScreen

        self.push_screen(HelpScreen())


def _filter_prompt(table: NavTable) -> FilterScreen:
    from vmkit_tui.frontends.tui.filter import FilterScreen

    return FilterScreen(table)


def run_app(app: VmkitApp) -> int:
    """Run the app in our own loop so the service is always stopped (no task, stream or
    connection left behind), however the app ends."""

    async def run() -> None:
        try:
            await app.run_async()
        finally:
            await app.service.stop()

    asyncio.run(run())
    return app.return_code or 0
