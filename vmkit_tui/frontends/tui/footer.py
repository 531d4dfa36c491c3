"""Textual's Footer, without the keys it leaves behind at every recompose.

Textual 8.2.8's Footer recomposes at each focus change and `refresh_bindings()`; every key it
makes is data-bound to the footer's `compact`, and the binding of a removed key stays in the
footer's watcher list (Textual prunes that list only when `compact` changes), keeping ~20
widgets alive per recompose: 7 MiB a minute of navigation. Re-announcing `compact` after each
recompose prunes the removed keys.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeysFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        self.mutate_reactive(Footer.compact)  # drops the removed keys' data bindings
