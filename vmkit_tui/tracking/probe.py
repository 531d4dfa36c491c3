"""One shared look at a workflow's newest runs, so idle watchers need not each ask GitHub.

A dashboard watching 100 environments polls 100 branch-filtered run lists every idle interval,
each a (free) 304 that still costs the process an HTTP round trip: most of its idle CPU. The
runs of every branch of a workflow are on one unfiltered list, newest first, so one request
per workflow answers for all of them: a new run on any branch comes out on top of it, and a
run on its first page that changes (status, re-run) changes the page. `Probes` fetches that
page at most once per `max_age` per workflow (concurrent askers share the answer) and numbers
its versions; a watcher with nothing live skips its own list while the version it last listed
under stands and its runs are all on the page (`Look.covers`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from vmkit_tui.sources.github import GitHubClient, WorkflowRun

__all__ = ["PAGE", "Look", "Probes"]

PAGE = 100  # runs on the page looked at (GitHub's largest page)


@dataclass(frozen=True, slots=True)
class Look:
    """The page as fetched `at`; `version` changes only when its runs did."""

    version: int
    at: datetime
    runs: tuple[WorkflowRun, ...]
    ids: frozenset[int]

    def covers(self, run_ids: Collection[int]) -> bool:
        """Whether a change to any of these runs would change the page: they are all on it,
        or the page holds every run of the workflow."""
        return len(self.runs) < PAGE or all(run_id in self.ids for run_id in run_ids)


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
            if last is not None and runs == last.runs:
                look = Look(last.version, now, last.runs, last.ids)
            else:
                version = last.version + 1 if last is not None else 0
                look = Look(version, now, runs, frozenset(run.id for run in runs))
            self._looks[key] = look
            return look
