"""Making remote text inert before anyone sees it.

Logs, commit messages, actors, hostnames and error bodies come from outside. Rich and Textual
strip only a few control characters, so an OSC 52 clipboard write or a screen clear in a log line
would reach the user's terminal. Everything remote goes through here first: `plain` removes every
escape and control sequence; `keep_sgr` keeps colour (SGR) sequences and removes the rest, for the
log viewer which renders colours itself.
"""

from __future__ import annotations

import re

_SEQUENCE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]                      # CSI: SGR, cursor moves, clears, reports
  | \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?  # OSC: title, OSC 8 links, OSC 52 clipboard (also unterminated)
  | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?       # DCS, SOS, PM, APC strings
  | \x1b.?                                       # any other escape, or a lone ESC
  | \x9b[0-?]+[ -/]*[@-~]                        # 8-bit CSI with its parameters
  | \x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?      # 8-bit OSC
  | [\x80-\x9f]                                  # any other 8-bit C1 control
    """,
    re.VERBOSE | re.DOTALL,
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_C0 = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # keep TAB only: one record is one line


def _last_frame(text: str) -> str:
    """A progress bar redraws with CR: keep what a terminal would finally show."""
    if "\r" in text:
        text = text.rstrip("\r")
        text = text.rsplit("\r", 1)[-1]
    return text


def plain(text: str) -> str:
    """One line of remote text with every escape and control sequence removed."""
    if text.isprintable():
        return text
    return _C0.sub("", _SEQUENCE.sub("", _last_frame(text)))


def keep_sgr(text: str) -> str:
    """Like `plain`, but colour/style (SGR) sequences survive for the log viewer to render."""
    if text.isprintable():
        return text
    text = _last_frame(text)
    out: list[str] = []
    pos = 0
    for match in _SEQUENCE.finditer(text):
        out.append(_C0.sub("", text[pos : match.start()]))
        if _SGR.fullmatch(match.group()):
            out.append(match.group())
        pos = match.end()
    out.append(_C0.sub("", text[pos:]))
    return "".join(out)


def bytes_to_text(data: bytes) -> str:
    """Remote bytes → text; invalid UTF-8 becomes U+FFFD instead of an error."""
    return data.decode("utf-8", errors="replace")


def escaped(text: str, limit: int | None = None) -> str:
    """`text` for quoting in an error message: every unprintable character (controls, escape
    sequences, bidi and zero-width marks) written repr-style (`\\x07`, `\\n`, `\\u202e`), so
    the message stays one inert line; longer than `limit` characters, cut with "…"."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
