"""What happens between launch and the first deploys on screen, and the history read after.

The first environment's deploys are read from the history file's bytes while the layout is
built (only that environment's documents are parsed: `History.preview`) and posted the moment
they are read, so they are usually in the first frame; the whole history is read and checked
once they are painted, and tracking starts then too. Both are CPU-bound and hold the GIL: what
the user waits for goes first. A damaged file found by the full read takes the preview down.
"""

from __future__ import annotations

import asyncio
import gc

from textual import work
from textual.app import App
from textual.message import Message

from vmkit_tui.domain.updates import Update
from vmkit_tui.frontends.tui.corrupt import CorruptHistoryScreen
from vmkit_tui.service import DeployService
from vmkit_tui.service_view import Overview
from vmkit_tui.store.history import HistoryCorrupt, move_aside


class ServiceUpdate(Message):
    """Updates from the deploy service, delivered on the UI thread in batches (tracking can
    publish hundreds at once while it catches up; one message each would flood the queue)."""

    def __init__(self, updates: tuple[Update, ...]) -> None:
        super().__init__()
        self.updates = updates


class OverviewLoaded(Message):
    def __init__(self, overview: Overview) -> None:
        super().__init__()
        self.overview = overview


class StartUp(App[None]):
    """The start-up sequence of `Dashboard` (which shows what it posts)."""

    repo: str | None
    environment: str | None
    track: bool  # start deploy tracking once the first deploys are painted

    def __init__(self, service: DeployService) -> None:
        super().__init__()
        self.service = service
        self._first_data = asyncio.Event()  # the selected environment's deploys are painted
        # The first environment's deploys, read while the layout is built (see `on_load`).
        self._early: tuple[tuple[str, str], asyncio.Task[Overview]] | None = None

    def preset_breakpoints(self) -> None:
        """Give the screen its breakpoint classes for the terminal's size before it is styled:
        Textual sets them at the first resize, and a class change there styles every widget
        again (a quarter of the start-up's styling: 393 style applications before the first
        deploys were painted, 300 without it)."""
        screen, (width, height) = self.screen, self.size
        classes: dict[str, bool] = {}
        for breakpoints, size in (
            (self.HORIZONTAL_BREAKPOINTS or [], width),
            (self.VERTICAL_BREAKPOINTS or [], height),
        ):
            classes.update((name, False) for _, name in breakpoints)
            classes.update(
                (name, True) for name in screen._get_breakpoint_classes(size, breakpoints)
            )
        screen.update_classes(classes, update=False)

    def on_load(self) -> None:
        """Start reading the first environment's deploys before the layout is built: they are
        shown the moment they are read (`show_early_when_read`), usually before the first frame."""
        # What the imports made lives as long as the process: out of the collector's way, the
        # collections while the layout is built walk only what start-up makes.
        gc.freeze()
        repo, environment = self._first_environment()
        if repo and environment:
            task = asyncio.ensure_future(self.service.preview(repo, environment))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._early = ((repo, environment), task)

    def show_early_when_read(self) -> None:
        """Called once the layout is mounted: the early read is posted the moment it is done."""
        if self._early is not None:
            self._early[1].add_done_callback(self._show_early)
        # Read the history and start tracking once the first frame is out: both are CPU-bound,
        # and a thread competing for the GIL would delay that frame.
        self.call_after_refresh(self._after_first_frame)

    def _show_early(self, task: asyncio.Task[Overview]) -> None:
        if not task.cancelled() and task.exception() is None:  # errors: `_load` reports them
            self.post_message(OverviewLoaded(task.result()))

    def _after_first_frame(self) -> None:
        # Everything made so far lives as long as the app: keep the collector from walking it
        # again while the history read allocates tens of thousands of objects.
        gc.freeze()
        self._load()
        if self.track:
            self._start_tracking()

    @work(group="tracking", exit_on_error=False)
    async def _start_tracking(self) -> None:
        await self._first_data.wait()  # its imports hold the GIL: the first deploys go first
        await self.service.start()
        for health in self.service.health():  # what was said before we listened
            self.post_message(ServiceUpdate((health,)))

    @work(group="service", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        """The selected environment's deploys first (painted before anything else competes
        for the GIL, unless the first frame had them already), then the whole history, which
        replaces them once all of it is checked."""
        try:
            try:
                repo, environment = self._first_environment()
                if repo and environment:
                    early = self._early
                    if early is not None and early[0] == (repo, environment):
                        await early[1]  # `_show_early` shows it
                    else:
                        self.post_message(
                            OverviewLoaded(await self.service.preview(repo, environment))
                        )
                    painted = asyncio.Event()
                    self.call_after_refresh(painted.set)
                    await painted.wait()
            finally:
                self._first_data.set()
            overview = await self.service.overview()
        except HistoryCorrupt as exc:
            # Nothing read from a damaged file stays on screen, the preview included.
            self.post_message(OverviewLoaded(Overview.configured(self.service.config)))
            if await self.push_screen_wait(CorruptHistoryScreen(str(exc))):
                moved = await asyncio.to_thread(move_aside, exc.path)
                self.notify(
                    f"moved the damaged history to {moved}; starting afresh",
                    markup=False,
                    timeout=15,
                )
                overview = await self.service.overview()
            else:
                return
        self.post_message(OverviewLoaded(overview))

    def _first_environment(self) -> tuple[str | None, str | None]:
        """The environment selected now, else the first one configured."""
        if self.repo and self.environment:
            return self.repo, self.environment
        for repo in self.service.config.repos:
            for env in repo.environments:
                return repo.name, env.name
        return None, None
