"""Remote text is made inert: no escape or control sequence survives except colours, no token
is shown, no invisible character hides, and every surface goes through the one sanitiser."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vmkit_tui
from vmkit_tui.domain.text import bytes_to_text, keep_sgr, plain, sanitise, sanitise_sgr

HOSTILE = [
    "\x1b]52;c;cm0gLXJmIH4=\x07",  # OSC 52: write the clipboard
    "\x1b]0;pwned\x07",  # OSC 0: window title
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 link
    "\x1b[2J\x1b[H",  # clear + home
    "\x1bc",  # reset
    "\x1bP+q544e\x1b\\",  # DCS
    "\x9b31m\x9d0;x\x9c",  # 8-bit C1
    "\x1b]0;unterminated title and the rest",
    "bell\x07 backspace\x08 del\x7f",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_no_escape_or_control_survives(payload: str) -> None:
    for cleaned in (plain("ok " + payload + " end"), keep_sgr("ok " + payload + " end")):
        assert "\x1b" not in cleaned
        assert not any(0x80 <= ord(c) <= 0x9F for c in cleaned)
        assert not any(ord(c) < 0x20 and c != "\t" for c in cleaned)
        assert "evil.example" not in cleaned


def test_colours_are_kept_only_by_keep_sgr() -> None:
    line = "\x1b[1;32mINFO\x1b[0m done \x1b[2K"
    assert keep_sgr(line) == "\x1b[1;32mINFO\x1b[0m done "
    assert plain(line) == "INFO done "


def test_markup_like_text_is_left_as_text() -> None:
    for text in ("[/]", "[@click=app.quit]x", "[b", "[true, false]"):
        assert plain(text) == text


def test_carriage_return_keeps_the_last_frame() -> None:
    assert plain("10%\r50%\r100%") == "100%"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert bytes_to_text(b"ok \xff\xfe end") == "ok \ufffd\ufffd end"


def test_8_bit_control_sequences_go_with_their_parameters() -> None:
    assert plain("a\x9b31mred\x9b0m b") == "ared b"
    assert plain("a\x9d0;title\x07b") == "ab"


@pytest.mark.parametrize("prefix", ["\x9b", "\x9b1", "\x1b[31m", "\x1b]0;", "x\x07"])
def test_escape_sequences_next_to_a_token_never_hide_it(prefix: str) -> None:
    from vmkit_tui.frontends.present import clean

    token = "ghp_" + "Z9y8X7w6V5" * 4
    cleaned = clean(f"oops {prefix}{token} end")
    assert "Z9y8X7w6V5" not in cleaned


def test_escaped_writes_every_unprintable_character_repr_style() -> None:
    from vmkit_tui.domain.text import escaped

    assert escaped("plain é text") == "plain é text"
    assert escaped("a\x00b\x07c\x1b]0;t\x07\nd\u202ee\u200b") == (
        "a\\x00b\\x07c\\x1b]0;t\\x07\\nd\\u202ee\\u200b"
    )
    assert escaped("x" * 10, limit=4) == "xxxx…"


TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"  # 36 characters after the prefix, like GitHub's
INVISIBLE = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068"]
INVISIBLE += ["\u2069", "\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060"]
INVISIBLE += ["\ufeff", "\u2028", "\U000e0041"]


@pytest.mark.parametrize("char", INVISIBLE)
def test_invisible_characters_become_visible_placeholders(char: str) -> None:
    placeholder = f"⟨U+{ord(char):04X}⟩"
    assert sanitise(f"ok {char}txt.exe") == f"ok {placeholder}txt.exe"
    assert sanitise_sgr(f"\x1b[31mok{char}\x1b[0m") == f"\x1b[31mok{placeholder}\x1b[0m"
    assert sanitise_sgr(f"ok{char}") == f"ok{placeholder}"


def test_sanitise_strips_redacts_and_keeps_one_line() -> None:
    hostile = f"fix {TOKEN} [@click=app.quit]x\x1b]52;c;cm0gLXJmIH4=\x07 \u202eevil\nnext"
    assert sanitise(hostile) == "fix [REDACTED] [@click=app.quit]x ⟨U+202E⟩evil next"
    assert sanitise(TOKEN) == "[REDACTED]"  # printable text takes the fast path: still redacted
    assert sanitise(ValueError(f"bad {TOKEN}")) == "bad [REDACTED]"


def test_sanitise_sgr_keeps_colours_and_still_redacts() -> None:
    assert sanitise_sgr(f"\x1b[32mpushed {TOKEN}\x1b[0m") == "\x1b[32mpushed [REDACTED]\x1b[0m"
    assert sanitise_sgr(f"plain {TOKEN}") == "plain [REDACTED]"
    # colour codes inside a token do not hide it: the colours go, the token too
    split = f"{TOKEN[:10]}\x1b[1m{TOKEN[10:]}"
    assert TOKEN[10:] not in sanitise_sgr(split) and "[REDACTED]" in sanitise_sgr(split)


def test_sanitising_is_idempotent() -> None:
    once = sanitise(f"\u202e{TOKEN}\x1b[2J done")
    assert sanitise(once) == once


SOURCES = Path(vmkit_tui.__file__).resolve().parent
STRIPPING_ONLY = {"plain", "keep_sgr", "redact"}  # each alone lets something through


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in (
            "vmkit_tui.domain.text",
            "vmkit_tui.domain.secret",
        ):
            names |= {alias.name for alias in node.names}
    return names


def test_every_surface_goes_through_the_one_sanitiser() -> None:
    from vmkit_tui.frontends import present

    frontends = sorted((SOURCES / "frontends").rglob("*.py"))
    bypass = [
        f"{path.relative_to(SOURCES)} imports {sorted(names & STRIPPING_ONLY)}"
        for path in frontends
        if (names := _imported_names(path)) & STRIPPING_ONLY
    ]
    assert not bypass, "frontends must show remote text through sanitise only:\n" + "\n".join(
        bypass
    )
    assert present.clean is sanitise  # the CLI's and MCP's name for the same function
    surfaces = ["tables", "details", "commands", "log_row", "log_pane", "audit", "confirm"]
    surfaces += ["dashboard", "corrupt"]
    for name in surfaces:
        assert "sanitise" in (SOURCES / "frontends" / "tui" / f"{name}.py").read_text(), name
