"""Remote text is made inert: no escape or control sequence survives except colours."""

from __future__ import annotations

import pytest

from vmkit_tui.domain.text import bytes_to_text, keep_sgr, plain

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
