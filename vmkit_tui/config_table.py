"""The validation machinery under config.py: the one-line `ConfigError`, and `Table`, a TOML
table checked key by key so that every mistake names its key path."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vmkit_tui.domain.text import escaped

T = TypeVar("T")


class ConfigError(Exception):
    """One clear line: where (file and key path) and what is wrong. Exit status 2. Whatever
    came from the file (keys, values, the path) is escaped: no control character gets out."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(escaped(f"{where}: {message}"))
        self.where = where


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_TOML_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and control characters escaped."""
    return (
        '"'
        + _TOML_NEEDS_ESCAPE.sub(lambda m: _TOML_ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), value)
        + '"'
    )


def toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """tomllib puts the position inside its message; lift it to the front: 'line L, column C'."""
    message = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        reason = message[: match.start()].strip()
        return f"TOML syntax error at line {match[1]}, column {match[2]}: {reason}"
    match = re.search(r"\(at end of document\)", message)
    if match:
        line = text.count("\n") + 1
        return f"TOML syntax error at line {line} (end of document): {message[: match.start()].strip()}"
    return f"TOML syntax error: {message}"


class Table:
    """A TOML table being validated: typed getters that name the key path, unknown-key check."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path or "config", f"expected a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(
        self, key: str, kind: type[T], default: T | None = None, *, required: bool = False
    ) -> T | None:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(self.key_path(key), "required key is missing")
            return default
        value = self.data[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise ConfigError(
                self.key_path(key), f"expected {_kind_name(kind)}, got {_kind(value)}"
            )
        return value

    def text(
        self,
        key: str,
        pattern: re.Pattern[str] | None = None,
        expected: str = "",
        default: str | None = None,
        *,
        required: bool = False,
    ) -> str | None:
        value = self.get(key, str, default, required=required)
        if (
            value is not None
            and key in self.data
            and pattern is not None
            and not pattern.fullmatch(value)
        ):
            raise ConfigError(self.key_path(key), f'expected {expected}, got "{value:.80}"')
        return value

    def path_value(self, key: str, default: Path | None = None) -> Path | None:
        value = self.get(key, str)
        if value is None:
            return default
        if not value.strip() or "\x00" in value:
            raise ConfigError(self.key_path(key), f'expected a file path, got "{value:.80}"')
        return Path(value).expanduser()

    def table(self, key: str) -> Table:
        self.seen.add(key)
        return Table(self.data.get(key, {}), self.key_path(key))

    def items(self, key: str, parse: Callable[[str, str], T]) -> list[T]:
        """A list of strings, each parsed by `parse(text, key_path)`."""
        values = self.get(key, list, [])
        out = []
        for index, item in enumerate(values or []):
            item_path = f"{self.key_path(key)}[{index}]"
            if not isinstance(item, str):
                raise ConfigError(item_path, f"expected a string, got {_kind(item)}")
            out.append(parse(item, item_path))
        return out

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            raise ConfigError(self.key_path(unknown[0]), f"unknown key (known here: {known})")


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _kind_name(kind: type) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(kind, kind.__name__)
