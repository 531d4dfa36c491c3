"""The selected environment's deploys are painted before the whole history is read and checked,
marked as such, and nothing of a history found damaged stays on screen."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from textual.app import ComposeResult
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import wait_for
from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.corrupt import CorruptHistoryScreen
from vmkit_tui.frontends.tui.footer import KeyFooter
from vmkit_tui.service import DeployService
from vmkit_tui.store.history import AsyncHistory, History

BILLING = ("acme/billing-api", "production")


class GatedHistory(History):
    """The real history file, whose full reads wait until the test opens the gate."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate

    def records(
        self, repo: str | None = None, environment: str | None = None
    ) -> list[DeployRecord]:
        assert self.gate.wait(10), "the gate was never opened"
        return super().records(repo, environment)


async def test_the_selected_environment_is_painted_before_the_whole_history(
    tmp_path: Path,
) -> None:
    sample = build_sample(tmp_path)
    gate = threading.Event()
    history = GatedHistory(sample.history, gate)
    service = DeployService(sample.config, AsyncHistory(history), sample.data_dir, now=lambda: NOW)
    app = VmkitApp(service, now=lambda: NOW, spinners=False, track=False)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            table = app.query_one("#deploys", DataTable)
            await wait_for(pilot, lambda: table.row_count > 0, "the first deploys, before the rest")
            assert app.overview.partial
            assert "reading the rest of the history" in str(table.border_title)
            assert app.overview.deploys[BILLING] == []  # not read yet
            gate.set()
            await wait_for(pilot, lambda: not app.overview.partial, "the whole history")
            assert "reading the rest" not in str(table.border_title)
            assert app.overview.deploys[BILLING]
            assert table.row_count == len(history.records("acme/storefront", "production"))
    finally:
        gate.set()


def bad_kind(raw: bytes, event: dict[str, object]) -> bytes:
    return raw.replace(orjson.dumps(event), orjson.dumps({**event, "kind": "exploded"}))


def repeated_key(raw: bytes, event: dict[str, object]) -> bytes:
    """A torn write's trace: the event repeats its `seq` key (still valid JSON)."""
    doc = orjson.dumps(event)
    return raw.replace(doc, doc[:-1] + b',"seq":' + str(event["seq"]).encode() + b"}")


@pytest.mark.parametrize("damage", [bad_kind, repeated_key])
async def test_a_history_damaged_elsewhere_takes_the_first_deploys_down(
    tmp_path: Path, damage: Callable[[bytes, dict[str, object]], bytes]
) -> None:
    sample = build_sample(tmp_path)
    raw = sample.history.read_bytes()
    data = orjson.loads(raw)
    billing = {d["id"] for d in data["deploys"].values() if d["repo"] == BILLING[0]}
    event = next(e for e in data["events"].values() if e["deploy_id"] in billing)
    damaged = damage(raw, event)  # the selected environment (storefront) itself is sound
    assert damaged != raw
    sample.history.write_bytes(damaged)
    assert History(sample.history).preview("acme/storefront", "production"), "shown first"
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.main.query_one("#deploys", DataTable)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CorruptHistoryScreen) and table.row_count == 0,
            "the corrupt-history screen, with no deploys behind it",
        )
        assert not any(app.overview.deploys.values())
        await pilot.press("q")  # quit, leaving the file as it is


async def test_the_footer_is_composed_only_when_its_keys_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up sends the footer a bindings signal per focus change and data refresh (five
    recomposes of the same keys, each restyling every key); it composes again only when what
    it shows changed."""
    composed: list[tuple[tuple[str, bool], ...]] = []
    real = KeyFooter.compose

    def counting(footer: KeyFooter) -> ComposeResult:
        widgets = list(real(footer))
        keys = tuple(
            (w.action, w.has_class("-disabled")) for w in widgets if isinstance(w, FooterKey)
        )
        if keys:
            composed.append(keys)
        return iter(widgets)

    monkeypatch.setattr(KeyFooter, "compose", counting)
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: not app.overview.partial, "the whole history")
        await wait_for(pilot, lambda: app.selected_record is not None, "a deploy selected")
        await pilot.pause()
        assert composed, "the footer shows keys"
        assert all(a != b for a, b in pairwise(composed)), composed
        assert len(composed) <= 2  # before a deploy is selected, and after
        before = len(composed)
        await pilot.press("tab", "tab")  # focus moves; the keys stay the same
        await pilot.pause()
        assert len(composed) == before
        app.deploy_id = None  # nothing selected: the deploy's keys are greyed again
        app._refresh_actions()
        await wait_for(pilot, lambda: len(composed) > before, "the footer follows a change")
        assert dict(composed[-1])["rollback"], "rollback greyed"


async def test_footer_keys_start_as_compact_as_the_footer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key is made compact and the footer is not: each key flipped its class once mounted,
    and each flip restyled it (a fifth of start-up's styling)."""
    flips: list[bool] = []
    watch = FooterKey._watch_compact

    def recording(key: FooterKey, compact: bool) -> None:
        if key.has_class("-compact") != compact and not key.has_class("-command-palette"):
            flips.append(compact)  # (the palette key is not bound to the footer's `compact`)
        watch(key, compact)

    monkeypatch.setattr(FooterKey, "_watch_compact", recording)
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.selected_record is not None, "a deploy selected")
        await pilot.pause()
        keys = list(app.query(FooterKey).exclude(".-command-palette"))
        assert keys, "the footer shows keys"
        assert not any(key.has_class("-compact") for key in keys)
    assert flips == []


class FirstFrame(VmkitApp):
    """Records the deploys on screen when the first frame is out. Its `on_mount` runs before
    the dashboard's and, for the test's sake only, lets the early read finish first."""

    rows_in_first_frame: int | None = None

    async def on_mount(self) -> None:
        assert self._early is not None, "the read started before the layout was built"
        await asyncio.wait([self._early[1]])
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        self.rows_in_first_frame = self.main.query_one("#deploys", DataTable).row_count


async def test_deploys_read_while_the_layout_is_built_are_in_the_first_frame(
    tmp_path: Path,
) -> None:
    sample = build_sample(tmp_path)
    previews: list[tuple[str, str]] = []

    class Counted(History):
        def preview(self, repo: str, environment: str) -> list[DeployRecord]:
            previews.append((repo, environment))
            return super().preview(repo, environment)

    history = AsyncHistory(Counted(sample.history))
    service = DeployService(sample.config, history, sample.data_dir, now=lambda: NOW)
    app = FirstFrame(service, now=lambda: NOW, spinners=False, track=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.rows_in_first_frame is not None, "the first frame")
        expected = len(History(sample.history).records("acme/storefront", "production"))
        assert app.rows_in_first_frame == expected > 0
        await wait_for(pilot, lambda: not app.overview.partial, "the whole history")
        assert previews == [("acme/storefront", "production")], "read once"


async def test_what_start_up_inherits_is_out_of_the_collectors_way_before_mounting(
    tmp_path: Path,
) -> None:
    inherited = [object()]  # made before the app, like everything its imports made
    walked: list[bool] = []

    class Probe(VmkitApp):
        def on_mount(self) -> None:
            walked.append(any(o is inherited for o in gc.get_objects()))

    sample = build_sample(tmp_path)
    service = DeployService(sample.config, AsyncHistory(History(sample.history)), sample.data_dir)
    app = Probe(service, now=lambda: NOW, spinners=False, track=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: walked, "the app mounted")
    assert walked == [False], "frozen before the layout was built"
    assert inherited


async def test_the_selected_deploys_logs_are_asked_for_after_the_first_deploys_are_painted(
    tmp_path: Path,
) -> None:
    """Asking imports the GitHub client, which holds the GIL for tens of milliseconds: the
    first deploy is selected as the first deploys arrive, and its logs must not delay them."""
    sample = build_sample(tmp_path)
    asked: list[int | None] = []

    class Recording(DeployService):
        async def fetch_logs(self, deploy_id: str) -> DeployRecord:
            asked.append(app.rows_in_first_frame)
            return await super().fetch_logs(deploy_id)

    # billing-api first: its newest deploy finished with no job log fetched (storefront's runs)
    config = replace(sample.config, repos=sample.config.repos[::-1])
    service = Recording(
        config, AsyncHistory(History(sample.history)), sample.data_dir, now=lambda: NOW
    )
    service.past_logs = False  # only the selection asks
    app = FirstFrame(service, now=lambda: NOW, spinners=False)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: asked, "the selected deploy's logs asked for")
    finally:
        await service.stop()
    assert asked[0] is not None and asked[0] > 0, "asked only once the first frame was out"


@pytest.mark.parametrize(
    ("size", "expected"), [((160, 40), {"-wide", "-tall"}), ((80, 24), {"-narrow", "-short"})]
)
async def test_the_screen_has_its_breakpoint_classes_before_it_is_styled(
    tmp_path: Path, size: tuple[int, int], expected: set[str]
) -> None:
    """Set at the first resize they would style every widget again (a quarter of start-up's
    styling): the layout for the terminal's size is there from the start."""
    seen: list[set[str]] = []

    class Probe(VmkitApp):
        def on_mount(self) -> None:
            seen.append(set(self.screen.classes))

    sample = build_sample(tmp_path)
    service = DeployService(sample.config, AsyncHistory(History(sample.history)), sample.data_dir)
    app = Probe(service, now=lambda: NOW, spinners=False, track=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: seen, "the app mounted")
        assert seen == [expected]
        assert set(app.screen.classes) == expected, "the resize agreed"
