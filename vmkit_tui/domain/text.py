"""Making remote text inert before anyone sees it.

Logs, commit messages, actors, hostnames and error bodies come from outside. Rich and Textual
strip only a few control characters, so an OSC 52 clipboard write or a screen clear in a log line
would reach the user's terminal; a token in a commit message would be shown to whoever looks; a
bidi override or zero-width character would make a reviewer read something else than what is
there ("Trojan Source"). Every surface (TUI, CLI, MCP, notifications) shows remote text through
`sanitise` (or `sanitise_sgr`, for the log viewer which renders colours itself): escapes stripped,
secrets redacted, invisible characters made visible. `plain` and `keep_sgr` are its stripping step
only; the history and spool keep the original bytes.
"""

from __future__ import annotations

import re

from vmkit_tui.domain.secret import redact

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
# Characters that change how text reads without showing themselves: bidi embeddings, overrides,
# isolates and marks, zero-width characters, line/paragraph separators, invisible operators, the
# soft hyphen and tag characters (which can smuggle hidden instructions to an assistant).
INVISIBLE = (
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f"
)
_INVISIBLE = re.compile(f"[{INVISIBLE}]")


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


def _placeholder(match: re.Match[str]) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def sanitise(text: object) -> str:
    """Remote text as any surface may show or return it: one line (newlines become spaces), no
    escape or control sequence, no token or signed-URL parameter, invisible characters shown as
    `⟨U+202E⟩`. Redacted before stripping (an escape glued to a token must not hide part of it)
    and after (nor may stripping join one up)."""
    text = text if isinstance(text, str) else str(text)
    if "\n" in text:
        text = text.replace("\r\n", " ").replace("\n", " ")
    if text.isprintable():  # the common case: nothing to strip, nothing invisible
        return redact(text)
    return _INVISIBLE.sub(_placeholder, redact(plain(redact(text))))


def sanitise_sgr(text: str) -> str:
    """`sanitise` for one log line whose colour (SGR) sequences the log viewer renders."""
    if text.isprintable():
        return redact(text)
    kept = keep_sgr(redact(text))
    if "\x1b" in kept and redact(bare := _SGR.sub("", kept)) != bare:
        return sanitise(text)  # a secret split by colour codes: lose the colours, not the redaction
    return _INVISIBLE.sub(_placeholder, redact(kept))


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
