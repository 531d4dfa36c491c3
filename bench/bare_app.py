"""The baseline every dashboard figure is measured against: a bare Textual app (Header, a
DataTable of 50 rows, Footer), as the source of a script run in a fresh interpreter."""

from __future__ import annotations

_SOURCE = """
import os
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Bare(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()

    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns("Status", "SHA", "Message", "When")
        for n in range(50):
            table.add_row("succeeded", f"{n:07x}", f"Merge pull request #{n}", f"{n}h ago")
"""


def bare_app(*, first_frame_only: bool) -> str:
    """Until quit in a terminal (CPU at rest), or headless at 120x36 until its first frame,
    writing `painted` on stdout (fd 1, past Textual's capture) once that frame is out."""
    if first_frame_only:
        return _SOURCE + (
            "        self.call_after_refresh(self.painted)\n\n"
            "    def painted(self):\n"
            "        os.write(1, b'painted\\n')\n"
            "        self.exit()\n\n"
            "Bare().run(headless=True, size=(120, 36))\n"
        )
    return _SOURCE + "\nBare().run()\n"
