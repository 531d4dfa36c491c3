"""`o`: open a deploy's run in a browser, or, where there is none (over SSH), show its URL and
offer to copy it. Only a browser with its own window counts: a console one (lynx, w3m) would
take over this terminal under the dashboard."""

from __future__ import annotations

import os
import webbrowser
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from vmkit_tui.domain.text import sanitise


def open_in_browser(url: str) -> bool:
    """Open `url` in a windowed browser; False when there is none (nothing was started).
    Blocking: call it from a thread."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if not os.environ.get("BROWSER") and _runs_in_terminal(browser):
        return False  # $BROWSER is the user's own choice; a guess that is a console is not
    return browser.open(url)


def _runs_in_terminal(browser: webbrowser.BaseBrowser) -> bool:
    if type(browser) is webbrowser.GenericBrowser:  # www-browser, lynx, w3m, links
        return True
    return isinstance(browser, webbrowser.UnixBrowser) and not browser.background  # elinks


class RunUrlScreen(ModalScreen[None]):
    """No browser here: the run's URL to read or copy."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy", "Copy the URL", id="url.copy"),
        Binding("escape,n,q,enter", "close", "Close", id="url.close"),
    ]

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = sanitise(url)  # from GitHub's API: remote text

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text("No browser found here", style="bold"), id="confirm-title")
            text = Text("Open the run yourself:\n")
            text.append(self.url)
            yield Static(text, id="confirm-facts")
            yield Static(Text("y: copy the URL   escape: close"), id="confirm-keys")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.url)
        self.notify(f"copied {self.url}", markup=False)
        self.dismiss()

    def action_close(self) -> None:
        self.dismiss()
