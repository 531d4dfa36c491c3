"""One shared look at a workflow's newest runs, so idle watchers need not each ask GitHub.

A dashboard watching 100 environments polls 100 branch-filtered run lists every idle interval,
each a (free) 304 that still costs the process an HTTP round trip: most of its idle CPU. The
runs of every branch of a workflow are on one unfiltered list, newest first, so one request
per workflow answers for all of them: a new run on any branch comes out on top of it, and a
run on its first page that changes (status, re-run) changes the page. `Probes` fetches that
page at most once per `max_age` per workflow (concurrent askers share the answer) and numbers
groups it by branch; a watcher with nothing live skips its own list while its branch's runs
on the page are what they were when it last listed, and the page covers its runs and anything
newer (`Look.covers`). Other branches' runs moving (a deploy running elsewhere) cost it nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from vmkit_tui.sources.github import GitHubClient, WorkflowRun

__all__ = ["PAGE", "Look", "Probes"]

PAGE = 100  # runs on the page looked at (GitHub's largest page)


@dataclass(frozen=True, slots=True)
class Look:
    """The page as fetched `at`, its runs grouped by branch."""

    at: datetime
    runs: tuple[WorkflowRun, ...]
    ids: frozenset[int]
    branches: Mapping[str | None, tuple[WorkflowRun, ...]]

    @classmethod
    def of(cls, at: datetime, runs: tuple[WorkflowRun, ...]) -> Look:
        branches: dict[str | None, list[WorkflowRun]] = {}
        for run in runs:
            branches.setdefault(run.head_branch, []).append(run)
        grouped = {branch: tuple(found) for branch, found in branches.items()}
        return cls(at, runs, frozenset(run.id for run in runs), grouped)

    def on(self, branch: str) -> tuple[WorkflowRun, ...]:
        """The page's runs of one branch: what a watcher of that branch compares."""
        return self.branches.get(branch, ())

    def covers(self, run_ids: Collection[int], since: datetime) -> bool:
        """Whether any change to these runs, and any run created after `since`, shows on the
        page: it holds every run of the workflow, or these runs and everything after `since`."""
        if len(self.runs) < PAGE:
            return True
        return self.runs[-1].created_at <= since and all(i in self.ids for i in run_ids)


class Probes:
    """The looks of one client's watchers, per (repo, workflow)."""

    def __init__(self, github: GitHubClient, now: Callable[[], datetime], max_age: float) -> None:
        self.github = github
        self.now = now
        self.max_age = max_age
        self._looks: dict[tuple[str, str], Look] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def look(self, repo: str, workflow: str) -> Look:
        """The page as seen at most `max_age` seconds ago (fetched now if older)."""
        key = (repo, workflow)
        async with self._locks.setdefault(key, asyncio.Lock()):
            last = self._looks.get(key)
            now = self.now()
            if last is not None and 0 <= (now - last.at).total_seconds() <= self.max_age:
                return last
            runs = tuple(await self.github.list_runs(repo, workflow, per_page=PAGE, max_pages=1))
            if last is not None and runs == last.runs:  # the same groups: compared by identity
                look = Look(now, last.runs, last.ids, last.branches)
            else:
                look = Look.of(now, runs)
            self._looks[key] = look
            return look
