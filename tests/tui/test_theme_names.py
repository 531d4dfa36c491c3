"""The config refuses an unknown `[ui] theme` by a list of its own (config cannot import
Textual): that list must be exactly the installed Textual's built-in themes."""

from textual.theme import BUILTIN_THEMES

from vmkit_tui.config import THEMES


def test_the_config_knows_exactly_textuals_themes() -> None:
    assert sorted(THEMES) == sorted(BUILTIN_THEMES)
