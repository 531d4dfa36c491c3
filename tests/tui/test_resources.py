"""What a long session must not accumulate or block on: spool readers, footer widgets, and
filters that walk the whole log on the UI thread."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.dom import DOMNode
from textual.widgets._footer import FooterKey

from tests.tui.factory import NOW, build_sample, make_app
from tests.tui.test_pilot import loaded, wait_for
from vmkit_tui.domain.updates import (
    DeployChanged,
    DeploysPruned,
    LogGrew,
    StepProgress,
    StepsChanged,
)
from vmkit_tui.frontends.tui.app import VmkitApp
from vmkit_tui.frontends.tui.log_lines import FILTER_FIRST, FILTER_INLINE, LogLines
from vmkit_tui.frontends.tui.log_pane import LogPane, view_filter
from vmkit_tui.frontends.tui.startup import ServiceUpdate
from vmkit_tui.store.spool import LogRecord, SpoolReader, SpoolWriter


def open_fds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return found


def footer_keys() -> int:
    gc.collect()
    return sum(isinstance(o, FooterKey) for o in gc.get_objects())


async def test_fd_count_unchanged_after_50_deploy_switches(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    app = make_app(sample)
    spools = str(sample.data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "j", "j", "k", "k")  # production: d5 → d3 → d5
        await pilot.pause()
        before = len(open_fds())
        for _ in range(25):
            await pilot.press("j", "j")  # the failed deploy's log
            assert app.deploy_id == sample.ids["d3"]
            await pilot.press("k", "k")  # the running deploy's log
            assert app.deploy_id == sample.ids["d5"]
        await pilot.pause()
        assert len(open_fds()) == before
        assert sum(spools in target for target in open_fds()) == 1  # the shown deploy's log
    assert not [target for target in open_fds() if spools in target]  # closed on unmount


async def test_the_footer_is_refreshed_only_when_the_possible_actions_change(
    tmp_path: Path,
) -> None:
    """Textual 8.2.8's Footer keeps its old keys alive at every `refresh_bindings()`: moving
    between deploys offering the same actions must not call it."""
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "G")  # production's oldest: d1, then d2 above
        assert app.deploy_id == sample.ids["d1"]
        await pilot.pause()
        before = footer_keys()
        for _ in range(20):
            await pilot.press("k", "j")  # d2 and d1: both succeeded, the same actions
        await pilot.pause()
        assert footer_keys() == before
        assert cancel_offered(app) is not True  # greyed, or left out for keys that can act
        await pilot.press("g")  # the running deploy: cancel becomes possible
        await wait_for(pilot, lambda: cancel_offered(app), "cancel offered in the footer")


def cancel_offered(app: App[None]) -> bool | None:
    keys = [key for key in app.screen.query(FooterKey) if key.action == "cancel_deploy"]
    return not keys[0].has_class("-disabled") if keys else None


def big_spool(data_dir: Path, deploy_id: str, count: int) -> list[LogRecord]:
    """GitHub lines in ##[group] sections, interleaved with kamal-proxy lines."""
    records = []
    for n in range(count):
        if n % 3 == 0:
            records.append(LogRecord(NOW, "203.0.113.10", "kamal-proxy", f'{{"msg":"req {n}"}}'))
        elif n % 50 == 1:
            records.append(LogRecord(NOW, "build", "github", f"##[group]step {n}"))
        elif n % 50 == 40:
            records.append(LogRecord(NOW, "build", "github", "##[endgroup]"))
        else:
            records.append(LogRecord(NOW, "build", "github", f"line {n}"))
    with SpoolWriter.for_deploy(data_dir, deploy_id) as spool:
        spool.append_many(records)
    return records


async def test_source_filter_and_fold_run_in_chunks_off_the_ui_thread(tmp_path: Path) -> None:
    sample = build_sample(tmp_path)
    count = 20 * FILTER_INLINE
    assert count > FILTER_FIRST * 4  # several chunks, group state carried across them
    records = big_spool(sample.data_dir, sample.ids["d1"], count)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter", "G", "l")
        pane, lines = app.query_one(LogPane), app.query_one(LogLines)
        await wait_for(pilot, lambda: lines.row_count == count, "the whole log")
        await pilot.press("s", "s")  # github (cancelled by the next key), then kamal
        await pilot.press("F")  # kamal with groups folded
        assert pane.source_filter == "kamal" and pane.folded
        keep = view_filter("kamal", True)
        assert keep is not None
        expected = [n for n, record in enumerate(records) if keep(record)]
        await wait_for(pilot, lambda: lines.filter_progress is None, "the filter done")
        assert [lines._rows[r] for r in range(lines.row_count)] == expected  # type: ignore[index]
        await pilot.press("s", "s", "s", "s")  # back to all sources, still folded
        keep = view_filter(None, True)
        assert keep is not None
        expected = [n for n, record in enumerate(records) if keep(record)]
        await wait_for(pilot, lambda: lines.filter_progress is None, "the filter done")
        assert lines.row_count == len(expected) < count
        assert lines.line_at_row(1).text == "##[group]step 1"  # type: ignore[union-attr]
        assert lines.line_at_row(2).text == '{"msg":"req 3"}'  # type: ignore[union-attr]


def test_a_copied_reader_outlives_the_original(tmp_path: Path) -> None:
    records = big_spool(tmp_path, "0123456789ab", 100)
    reader = SpoolReader(tmp_path / "logs" / "0123456789ab.log")
    twin = reader.copy()
    reader.close()
    assert [r.text for r in twin.lines(0, 100)] == [r.text for r in records]
    assert twin.search("line 98") == 98
    twin.close()


async def test_updates_arriving_while_the_panes_are_gone_are_dropped(tmp_path: Path) -> None:
    """At exit the panes are removed before the service's last updates and the clock's last
    tick are handled: those are dropped, not raised (seen as NoMatches in a loaded run)."""
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        record = next(iter(app.overview.deploys.values()))[0]
        await app.main.query_one("#top").remove()  # the lists go first
        assert app._panes_gone
        app.post_message(ServiceUpdate((DeployChanged(record),)))
        app._clock()
        await pilot.pause()
        assert app.is_running


async def test_a_batch_of_updates_walks_no_widget_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a log streams, batches of updates come several times a second: checking that the
    panes are still there (and finding the log pane) is a cached lookup, not a `query()`
    walking every widget."""
    sample = build_sample(tmp_path)
    app = make_app(sample)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("enter", "enter")
        await wait_for(pilot, lambda: app.deploy_id == sample.ids["d5"], "its deploy selected")
        walks: list[object] = []
        query = DOMNode.query

        def counted(node: DOMNode, *args: Any, **kwargs: Any) -> Any:
            walks.append(args)
            return query(node, *args, **kwargs)

        monkeypatch.setattr(DOMNode, "query", counted)
        assert not app._panes_gone
        app.post_message(ServiceUpdate((LogGrew(sample.ids["d5"]),)))
        await pilot.pause()
        assert walks == []


async def test_focus_changes_leave_no_footer_keys_behind(tmp_path: Path) -> None:
    """Every focus change recomposes the footer: the keys it replaces must not stay alive."""
    app = make_app(build_sample(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.pause()
        shown = len(app.screen.query(FooterKey))
        for _ in range(20):
            await pilot.press("tab")  # through the four panes, five times
        await pilot.pause()
        assert len(app.screen.query(FooterKey)) == shown
        assert footer_keys() == shown


async def test_a_pruned_deploy_leaves_nothing_behind_in_the_dashboard(tmp_path: Path) -> None:
    """What the dashboard keeps per deploy (its steps, whether its logs were asked for) goes
    with the deploy: the history is pruned to `keep` per environment, these would grow for as
    long as the dashboard runs (seen in a 10-minute soak with tracemalloc)."""
    sample = build_sample(tmp_path)
    app = make_app(sample)
    old, running = sample.ids["d1"], sample.ids["d5"]
    steps = (StepProgress("deploy", "Deploy with Kamal", 1, "completed", "success"),)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        app._logs_asked.add(old)  # as when a tracking dashboard selected it
        for deploy_id in (old, running):
            app.service.updates.publish(StepsChanged(deploy_id, steps))
        await wait_for(pilot, lambda: {old, running} <= set(app.steps), "the steps")
        app.service.updates.publish(DeploysPruned((old,)))
        await wait_for(pilot, lambda: old not in shown_ids(app), "the prune")
        assert set(app.steps) == {running} and old not in app._logs_asked


def shown_ids(app: VmkitApp) -> set[str]:
    return {record.id for records in app.overview.deploys.values() for record in records}
