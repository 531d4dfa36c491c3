"""`[user@]host[:port]`: the one parser for every place a host is written (the config's `hosts`
and `deploy_host`, a Kamal config's servers, an SSH target, a ProxyJump hop), so each accepts
the same text, reads it the same way and words a bad one the same way.

The rules are ASCII and checked before a host reaches a connection or a command line: a user
is a login name, a host is a name of dot-separated labels (letters, digits, `_`, `-` inside; a
`~/.ssh/config` alias is such a name), an IPv4 address, or an IPv6 address (bare, or in
brackets when a port follows; kept in its compressed form), a port is 1-65535. A user or port
left out is None: the SSH config or the SSH defaults decide, as they do for `ssh`.

It lives in `domain` so the config can parse hosts at startup without importing the SSH stack.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from vmkit_tui.domain.models import ValidationError
from vmkit_tui.domain.text import escaped

EXPECTED = "[user@]host[:port]"
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}")  # no `%zone`: nothing past the address itself
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A parsed `[user@]host[:port]`; `host` is a name or a bare IP address."""

    user: str | None
    host: str
    port: int | None = None

    def __str__(self) -> str:
        """As written in a config (port 22 left out), so it parses back to the same host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port not in (None, 22) else "")

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        """Raise ValidationError (one line: the expected form, the text, what is wrong)."""
        if not isinstance(text, str):
            raise ValidationError(f"expected {EXPECTED}, got {type(text).__name__}")
        user, at_sign, rest = text.rpartition("@")
        if (at_sign and not user) or "@" in user or not rest:
            raise _bad(text)
        port_text = None
        if rest.startswith("["):
            inner, bracket, after = rest[1:].partition("]")
            if not bracket or (after and not after.startswith(":")):
                raise _bad(text)
            host = _ipv6(inner, text)
            port_text = after[1:] if after else None
        elif rest.count(":") > 1:
            host = _ipv6(rest, text)  # bare, so it cannot carry a port
        else:
            host, colon, after = rest.partition(":")
            port_text = after if colon else None
            if not valid_host(host):
                raise _bad(text, "not a host name or address")
        if user and not valid_user(user):
            raise _bad(text, "not a user name")
        return cls(user or None, host, None if port_text is None else _port(port_text, text))


def valid_user(user: object) -> bool:
    return isinstance(user, str) and _USER.fullmatch(user) is not None


def valid_host(host: object) -> bool:
    """A host name or a bare IP address (as `HostSpec.host` holds it)."""
    if not isinstance(host, str):
        return False
    if _NAME.fullmatch(host):
        return True
    return ":" in host and _IPV6.fullmatch(host) is not None and _is_ipv6(host)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ipv6(text: str, whole: str) -> str:
    if not _IPV6.fullmatch(text) or not _is_ipv6(text):
        raise _bad(whole, "not an IPv6 address")
    return str(ipaddress.IPv6Address(text))


def _port(text: str, whole: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise _bad(whole, "the port must be 1-65535")
    return int(text)


def _bad(text: str, why: str = "") -> ValidationError:
    return ValidationError(
        f'expected {EXPECTED}, got "{escaped(text, 80)}"' + (f" ({why})" if why else "")
    )
