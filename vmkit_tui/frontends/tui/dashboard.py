"""The dashboard's panes and the data flowing into them: repo → environment → deploy tables,
details and the live log, filled from the `DeployService`.

An async worker loads the overview and another turns the service's updates into messages;
widgets never do I/O themselves. `VmkitApp` adds the key bindings and actions on top.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState

from vmkit_tui.config import HostSpec, resolve_config_path
from vmkit_tui.domain.models import DeployRecord, Status, Trigger, utcnow
from vmkit_tui.domain.text import sanitise
from vmkit_tui.domain.updates import (
    DeployChanged,
    DeploysPruned,
    EligibilityChanged,
    Health,
    LogGrew,
    SourceHealth,
    StepProgress,
    StepsChanged,
    Update,
)
from vmkit_tui.frontends.present import clean, no_repos_message
from vmkit_tui.frontends.tui.details import DeployDetails
from vmkit_tui.frontends.tui.footer import KeyFooter
from vmkit_tui.frontends.tui.hosts import short_names, spool_host
from vmkit_tui.frontends.tui.log_pane import LogPane
from vmkit_tui.frontends.tui.startup import OverviewLoaded, ServiceUpdate, StartUp
from vmkit_tui.frontends.tui.tables import (
    DeploysTable,
    EnvironmentsTable,
    NavTable,
    ReposTable,
    environment_key,
    environment_of,
)
from vmkit_tui.service import DeployService
from vmkit_tui.service_view import Overview


class Dashboard(StartUp):
    """The panes and their data; what keys do is `VmkitApp`'s."""

    # Actions whose availability depends on the selected deploy (see `VmkitApp.check_action`).
    RECORD_ACTIONS = (
        "rollback",
        "cancel_deploy",
        "deploy_sha",
        "audit",
        "open_run",
        "copy_sha",
        "jump_diagnosis",
        "toggle_follow",
    )

    def __init__(
        self,
        service: DeployService,
        *,
        readonly: bool = False,
        now: Callable[[], datetime] = utcnow,
        spinners: bool = True,
        keymap: dict[str, str] | None = None,
        bell: bool = False,
        track: bool = True,
    ) -> None:
        super().__init__(service)
        self.readonly = readonly
        self.now = now
        self.spinners = spinners  # tick the clock: ages and running deploys' elapsed times
        self.bell_on_finish = bell
        self.track = track  # start deploy tracking (the caller stops the service at exit)
        self._keymap = keymap or {}
        self.overview = Overview()
        self.repo: str | None = None
        self.environment: str | None = None
        self.deploy_id: str | None = None
        self.steps: dict[str, tuple[StepProgress, ...]] = {}
        self.health: dict[tuple[str, str, str], SourceHealth] = {}
        self._actions: tuple[bool | None, ...] = ()  # what the footer offers, as last shown
        self._select_new: tuple[str, str] | None = None  # select the next new deploy there
        self._logs_asked: set[str] = set()  # finished deploys whose logs were asked for

    # --- layout --------------------------------------------------------------------------------

    @property
    def main(self) -> Screen[None]:
        """The dashboard screen, also while a dialog or help is on top (updates keep coming)."""
        return self.screen_stack[0]

    def compose(self) -> ComposeResult:
        self.preset_breakpoints()
        yield Header(show_clock=False, icon="▲")
        # The lists and details on one side, the log (what people watch) on the other: below
        # them on narrow terminals, beside them, full height, on wide ones (styles/app.tcss).
        with Container(id="body"):
            with Vertical(id="side"):
                with Horizontal(id="top"):
                    yield ReposTable(id="repos")
                    yield EnvironmentsTable(id="environments")
                with Vertical(id="deploy-column"):
                    yield DeploysTable(
                        now=self.now,
                        eligibility=self.service.rollback_eligibility,
                        id="deploys",
                        sharing=self.service.config.github.share,
                    )
                    yield Static(id="problems", markup=False)
                    yield DeployDetails(id="details")
            yield LogPane(id="log")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.main.query_one(ReposTable).set_title("Repos")
        self.main.query_one(EnvironmentsTable).set_title("Environments")
        self.main.query_one(DeploysTable).set_title("Deploys")
        self.main.query_one("#problems").display = False
        if self._keymap:
            self.set_keymap(self._keymap)
        if self.readonly:  # always on screen: r, c and "Deploy a SHA…" are refused here
            self.sub_title = f"{self.sub_title} · READ-ONLY" if self.sub_title else "READ-ONLY"
        if self.spinners:
            self.set_interval(1.0, self._clock)
        self.main.query_one("#repos").focus()
        self._show_configured()
        self.show_early_when_read()
        self._listen()

    def _show_configured(self) -> None:
        """Paint the configured repos and environments at once; deploys follow from the history."""
        self.overview = Overview.configured(self.service.config)
        self.main.query_one(DeploysTable).set_title("Deploys · loading history…")
        self._refresh_repos()

    @work(group="updates", exit_on_error=False)
    async def _listen(self) -> None:
        async with self.service.updates.subscription() as queue:
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < 1000:
                    batch.append(queue.get_nowait())
                self.post_message(ServiceUpdate(tuple(batch)))

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """Errors in background work become a message on screen, never a crashed app."""
        error = event.worker.error
        if event.state is WorkerState.ERROR and error is not None:
            self.notify(
                clean(error) or type(error).__name__,
                title="Error",
                severity="error",
                markup=False,
                timeout=15,
            )

    # --- data → widgets ------------------------------------------------------------------------

    @on(OverviewLoaded)
    def _overview_loaded(self, message: OverviewLoaded) -> None:
        self.overview = message.overview
        if self._panes_gone:  # the history's rest was read while the app was closing
            return
        if not self.overview.repos:
            source = self.service.config.source
            self._show_problem(no_repos_message(source, resolve_config_path(None)))
        self._refresh_all()

    def _refresh_repos(self) -> None:
        repos = [(name, self.overview.summaries(name)) for name in self.overview.repos]
        self.main.query_one(ReposTable).show(repos)

    def _refresh_environments(self) -> None:
        table = self.main.query_one(EnvironmentsTable)
        table.set_title(f"Environments · {sanitise(self.repo)}" if self.repo else "Environments")
        table.show(self.overview.summaries(self.repo) if self.repo else [])

    def _refresh_deploys(self) -> None:
        table = self.main.query_one(DeploysTable)
        records = (
            self.overview.deploys.get((self.repo, self.environment), [])
            if self.repo and self.environment
            else []
        )
        title = f"Deploys · {sanitise(self.environment)}" if self.environment else "Deploys"
        if self.overview.partial:
            title += " · reading the rest of the history…"
        table.set_title(title)
        table.show(records)

    def _refresh_details(self) -> None:
        record = self.selected_record
        steps = self.steps.get(record.id, ()) if record else ()
        target = (
            self.overview.find(record.deploy.rollback_of)
            if record and record.deploy.rollback_of
            else None
        )
        eligibility = self.service.rollback_eligibility(record) if record else None
        self.main.query_one(DeployDetails).show(record, steps, target, eligibility)
        self.main.query_one(LogPane).show_diagnosis(record.diagnosis if record else None)
        self._refresh_actions()

    @on(NavTable.Chosen, "#repos")
    def _repo_chosen(self, message: NavTable.Chosen) -> None:
        self.repo = message.key
        self._refresh_environments()

    @on(NavTable.Chosen, "#environments")
    def _environment_chosen(self, message: NavTable.Chosen) -> None:
        self.environment = environment_of(message.key)
        self._refresh_deploys()
        self._refresh_health()

    @on(NavTable.Chosen, "#deploys")
    def _deploy_chosen(self, message: NavTable.Chosen) -> None:
        if message.key == self.deploy_id:
            return
        self.deploy_id = message.key
        self._refresh_details()
        self._open_log()
        self._ask_for_logs()

    def _ask_for_logs(self) -> None:
        """The selected deploy, once finished, gets its job logs and diagnosis if it has none
        (the past before the first start): asked once per deploy, in the background."""
        record = self.selected_record
        if not self.track or record is None or not record.status.is_final:
            return
        if record.id not in self._logs_asked:
            self._logs_asked.add(record.id)
            self._fetch_logs(record.id)

    @work(group="logs", exit_on_error=False)
    async def _fetch_logs(self, deploy_id: str) -> None:
        # Its first call imports the GitHub client (~50 ms holding the GIL): not before the
        # first deploys are painted (the first deploy is selected as they arrive).
        await self._first_data.wait()
        await self.service.fetch_logs(deploy_id)  # what it finds arrives as updates

    def _open_log(self) -> None:
        pane = self.main.query_one(LogPane)
        if self.deploy_id is None:
            pane.show(None, None)
            return
        from vmkit_tui.store.spool import SpoolReader

        pane.show(self.deploy_id, SpoolReader(self.service.log_path(self.deploy_id)))
        pane.lines.set_hosts(short_names(spool_host(host) for host in self._hosts()))

    def _hosts(self) -> tuple[HostSpec, ...]:
        """The configured hosts of the selected deploy's environment (none if unknown)."""
        record = self.selected_record
        if record is None:
            return ()
        try:
            repo = self.service.config.repo(record.deploy.repo)
            return repo.environment(record.deploy.environment).hosts
        except KeyError:  # a deploy of a repo or environment no longer configured
            return ()

    def _refresh_actions(self) -> None:
        """Refresh the footer only when the set of possible actions changed: each call makes
        Textual's Footer rebuild all its keys."""
        actions = tuple(self.check_action(action, ()) for action in self.RECORD_ACTIONS)
        if actions != self._actions:
            self._actions = actions
            self.refresh_bindings()

    @property
    def selected_record(self) -> DeployRecord | None:
        return self.overview.find(self.deploy_id) if self.deploy_id else None

    @property
    def _panes_gone(self) -> bool:
        """Shutting down (or not composed yet): the panes are not there to show anything, and
        updates or ticks still in flight are moot. Asked at every batch of updates (several a
        second while a log streams): a cached lookup, where `query()` walks every widget."""
        if not self.screen_stack:
            return True
        repos = self.main.query_one_optional(ReposTable)
        return repos is None or not repos.is_attached

    @on(ServiceUpdate)
    def _service_update(self, message: ServiceUpdate) -> None:
        if self._panes_gone:
            return
        changed: set[tuple[str, str]] = set()  # the environments whose deploys changed
        stale: set[str] = set()  # panes to refresh once for the whole batch: details, health
        for update in message.updates:
            self._apply(update, changed, stale)
        if changed:
            self._show_changes(changed)
            if (self.repo, self.environment) in changed:
                stale.discard("details")  # refreshed with the open environment's deploys
        if "details" in stale:
            self._refresh_details()
        if "health" in stale:
            self._refresh_health()

    def _apply(self, update: Update, changed: set[tuple[str, str]], stale: set[str]) -> None:
        if isinstance(update, DeployChanged):
            self._deploy_changed(update.record)
            changed.add((update.record.deploy.repo, update.record.deploy.environment))
        elif isinstance(update, DeploysPruned):
            self.overview.remove(update.deploy_ids)
            for deploy_id in update.deploy_ids:  # kept per deploy: gone with it, or forever
                self.steps.pop(deploy_id, None)
                self._logs_asked.discard(deploy_id)
            changed.update(self.overview.deploys)
        elif isinstance(update, StepsChanged):
            self.steps[update.deploy_id] = update.steps
            if update.deploy_id == self.deploy_id:
                stale.add("details")
        elif isinstance(update, LogGrew):
            if update.deploy_id == self.deploy_id:
                self.main.query_one(LogPane).lines.lines_grew()
        elif isinstance(update, SourceHealth):
            self.health[(update.repo, update.environment, update.key)] = update
            stale.add("health")
        elif (
            isinstance(update, EligibilityChanged)
            and update.repo == self.repo
            and self.environment in update.environments
        ):
            self.main.query_one(DeploysTable).eligibility_changed()
            stale.add("details")

    def _deploy_changed(self, record: DeployRecord) -> None:
        before = self.overview.find(record.id)
        self.overview.upsert(record)
        if record.id == self.deploy_id:
            self._ask_for_logs()  # selected before its final status was known
        where = (record.deploy.repo, record.deploy.environment)
        if (
            before is None
            and self._select_new == where
            and record.deploy.triggered_by is not Trigger.PUSH
        ):
            # the deploy our confirm just recorded: select it, so its logs stream in the pane
            self._select_new = None
            self._refresh_all()
            self.select(record.deploy.repo, record.deploy.environment, record.id)
        # Only a deploy seen running: records filled in from the past go pending → final quietly.
        if (
            before is not None
            and before.status in (Status.RUNNING, Status.CANCELLING)
            and record.status.is_final
        ):
            self._announce_finished(record)

    def _show_changes(self, changed: set[tuple[str, str]]) -> None:
        """Repaint what the changed environments touch: their rows (summaries are cached per
        environment), the open environment's deploys and the selected deploy."""
        self._refresh_repos()
        if any(repo == self.repo for repo, _ in changed):
            self._refresh_environments()
        if (self.repo, self.environment) in changed:
            self._refresh_deploys()
            self._refresh_details()

    def _announce_finished(self, record: DeployRecord) -> None:
        if (record.deploy.repo, record.deploy.environment) != (self.repo, self.environment):
            return
        severity: SeverityLevel = "information" if record.status is Status.SUCCEEDED else "warning"
        message = f"{record.deploy.environment} {record.deploy.short_sha}: {record.status.value}"
        undo = next((e.detail for e in record.events if e.detail.startswith("To undo")), None)
        if undo and record.status is Status.SUCCEEDED:
            message += f". {undo}"  # how to go back, named after a rollback went live
        self.notify(
            sanitise(message), title=sanitise(record.deploy.repo), severity=severity, markup=False
        )
        if self.bell_on_finish:
            self.bell()

    def refresh_lists(self) -> None:
        """Re-apply list filters (the `/` prompt calls this as the user types)."""
        self._refresh_all()

    def _refresh_all(self) -> None:
        self._refresh_repos()
        self._refresh_environments()
        self._refresh_deploys()
        self._refresh_details()

    def _refresh_health(self) -> None:
        problems = [
            h
            for (repo, env, _), h in sorted(self.health.items())
            if repo == self.repo and env == self.environment and h.health is not Health.OK
        ]
        if problems:
            self._show_problem("  ·  ".join(sanitise(p.message) for p in problems))
        else:
            self.main.query_one("#problems").display = False

    def _show_problem(self, message: str) -> None:
        box = self.main.query_one("#problems", Static)
        box.update(message)
        box.display = True

    def _clock(self) -> None:
        """Once a second: the deploys' ages and running times, where their text changed (most
        seconds none does, and nothing is repainted)."""
        if not self._panes_gone and self.screen is self.main:  # not under help or a dialog
            self.main.query_one(DeploysTable).tick()

    # --- cursors -------------------------------------------------------------------------------

    def select(
        self, repo: str, environment: str | None = None, deploy_id: str | None = None
    ) -> None:
        """Move the cursors to a repo / environment / deploy (used by the command palette)."""
        self.main.query_one(ReposTable).set_rows_cursor(repo)
        if environment:
            self.repo = repo
            self._refresh_environments()
            self.main.query_one(EnvironmentsTable).set_rows_cursor(
                environment_key(repo, environment)
            )
        if environment and deploy_id:
            self.environment = environment
            self._refresh_deploys()
            self.main.query_one(DeploysTable).set_rows_cursor(deploy_id)
            self.main.query_one("#deploys").focus()
