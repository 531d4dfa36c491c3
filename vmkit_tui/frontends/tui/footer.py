"""The footer: as many keys as fit the width, most important first; `?` lists all of them.

Textual's footer shows every binding with `show=True` and cuts the row at the screen's edge, so
at 80 or 120 columns the last keys were half-drawn (`c Ca`). Here keys that can act now come
before greyed ones, and among them `PRIORITY` decides; the chosen keys keep their usual order.

It also drops the keys it replaces: Textual 8.2.8's Footer recomposes at each focus change and
`refresh_bindings()`; every key it makes is data-bound to the footer's `compact`, and the binding
of a removed key stays in the footer's watcher list (pruned only when `compact` changes),
keeping ~20 widgets alive per recompose: 7 MiB a minute of navigation. Re-announcing `compact`
after each recompose prunes them.

Textual also queues one recompose per bindings signal (start-up sends nine: focus, each data
refresh), each rebuilding every key and restyling it. Here signals that arrive before the
queued recompose runs share it, and it is skipped when the keys it would show did not change.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Actions by importance when room is short (`?` first: it lists whatever is left out).
PRIORITY = (
    "help",
    "zoom",
    "rollback",
    "cancel_deploy",
    "search",
    "toggle_follow",
    "cycle_source",
    "jump_diagnosis",
    "drill",
    "open_run",
    "copy_sha",
    "quit",
)
PALETTE_ROOM = 12  # "^p palette" on the right, and a margin


def _rank(key: FooterKey) -> tuple[bool, int]:
    action = key.action.split("(", 1)[0].removeprefix("app.")
    rank = PRIORITY.index(action) if action in PRIORITY else len(PRIORITY)
    return key.has_class("-disabled"), rank


def key_width(key: FooterKey) -> int:
    """Cells a footer key takes: ` key description ` (Textual's padding) and the gap after it."""
    return len(key.key_display) + len(key.description) + 4


class KeyFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._laid_out_for = 0
        self._shown: object = None  # what the last compose showed (`_wanted`)
        self._queued = False

    def _wanted(self) -> object:
        """What a compose now would be made of: the width and every shown key's state."""
        return self.app.size.width, [
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for _node, binding, enabled, tooltip in self.screen.active_bindings.values()
            if binding.show
        ]

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        ours = screen.app.app_focus and self.is_attached and screen is self.screen
        if ours and not self._queued:
            self._queued = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._queued = False
        if self._wanted() != self._shown:
            await self.recompose()

    def compose(self) -> ComposeResult:
        self._shown = self._wanted() if self._bindings_ready else None
        width = self.app.size.width
        composed = list(super().compose())
        keys = [k for k in composed if isinstance(k, FooterKey)]
        palette = [k for k in keys if k.has_class("-command-palette")]
        room = width - (PALETTE_ROOM if palette else 0)
        chosen: set[int] = set()
        for key in sorted((k for k in keys if not palette or k is not palette[0]), key=_rank):
            needed = key_width(key)
            if needed <= room:
                chosen.add(id(key))
                room -= needed
        self.styles.grid_size_columns = len(chosen) + len(palette)
        self._laid_out_for = width
        for widget in composed:
            if isinstance(widget, FooterKey) and widget not in palette:
                # Made compact by default, each key bound to the footer's `compact` would flip
                # to its value once mounted, and each flip restyles it: start it at that value
                # (the palette key is not bound: it stays compact).
                widget.set_reactive(FooterKey.compact, self.compact)
            if id(widget) in chosen or widget in palette or not isinstance(widget, FooterKey):
                yield widget

    def on_resize(self) -> None:
        if self.app.size.width != self._laid_out_for:
            self.call_after_refresh(self.recompose)

    async def recompose(self) -> None:
        await super().recompose()
        self.mutate_reactive(Footer.compact)  # drops the removed keys' data bindings
