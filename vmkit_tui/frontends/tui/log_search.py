"""Log search (`/`, `n`, `N`): every match of a term among the rows the log view shows, and which
one is current, so the status line can say `3/17`.

The matches come from the spool's own search (`SpoolReader.find_all`, which skips blocks
without a match), run by the view in a worker thread; a log that grew is searched again only
from where the last search stopped. Pure: nothing here touches the screen.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

# What a finished search does with its result: jump to the first match at or after the top of
# the view (a new search), move to the next / previous match (`n` / `N`), or only recount
# (the view's filter changed under it).
Step = Literal["first", "next", "previous", "recount"]


class Searchable(Protocol):
    def find_all(self, pattern: str, start: int = 0, stop: int = -1) -> list[int]: ...


def matching_rows(
    source: Searchable, term: str, start: int, stop: int, shown: Sequence[int] | None
) -> list[int]:
    """The view rows whose spool line in [start, stop) matches `term`. `shown`: the spool line
    of each row when the view is filtered (ascending), None when every line is a row. Safe in
    a worker thread while the UI thread appends to `shown` (only its first rows are read)."""
    lines = source.find_all(term, start, stop)
    if shown is None:
        return lines
    count = len(shown)
    rows = []
    for line in lines:
        row = bisect_left(shown, line, 0, count)
        if row < count and shown[row] == line:
            rows.append(row)
    return rows


@dataclass
class SearchState:
    """One search of one deploy's log: its term, the matching rows found so far (ascending),
    how many spool lines were searched, and the current match (an index into `rows`)."""

    term: str = ""
    rows: list[int] = field(default_factory=list)
    scanned: int = 0
    searched: bool = False  # a result has come back (until then the count is unknown)
    current: int | None = None

    @property
    def case_sensitive(self) -> bool:
        """Smart case, as the spool searches: an upper-case letter makes it exact."""
        return any(c.isupper() for c in self.term)

    @property
    def current_row(self) -> int | None:
        return self.rows[self.current] if self.current is not None else None

    def label(self) -> str:
        """`3/17`, `17 matches`, `no match`, or `…` while the first result is out."""
        if not self.term:
            return ""
        if not self.searched:
            return "…"
        if not self.rows:
            return "no match"
        if self.current is None:
            return f"{len(self.rows)} match" + ("es" if len(self.rows) > 1 else "")
        return f"{self.current + 1}/{len(self.rows)}"

    def add(self, rows: list[int], scanned: int) -> None:
        self.rows.extend(rows)
        self.scanned = scanned
        self.searched = True

    def move(self, step: Step, top: int) -> int | None:
        """Make the match `step` leads to current (wrapping around) and return its row; `top`:
        the first row on screen, where a search without a current match starts."""
        rows = self.rows
        if not rows or step == "recount":
            self.current = None
            return None
        at_or_after = bisect_left(rows, top)
        current = self.current
        if step == "first" or current is None:
            index = at_or_after if step != "previous" else at_or_after - 1
        else:
            index = current + 1 if step == "next" else current - 1
        self.current = index % len(rows)
        return rows[self.current]
