"""Small typed readers for validating YAML data with file:line errors.

``Reader`` wraps one loaded document; every check raises :class:`SweepError` pointing
at the key that is wrong. Values that came from ``--set`` are reported as such.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from launcher.errors import SweepError
from launcher.yamlfile import KeyPath, YamlDoc


def dotted(key_path: KeyPath) -> str:
    """``("parameters", "lr", "min")`` -> ``parameters.lr.min``; list items as ``hosts[0]``."""
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


class Reader:
    """Typed access to one YAML document, raising errors that point at the key."""

    def __init__(self, doc: YamlDoc, overridden: Mapping[KeyPath, str] | None = None) -> None:
        self.doc = doc
        self.overridden = dict(overridden or {})  # key path -> the option that set it

    def error(self, at: KeyPath, message: str, hint: str | None = None) -> SweepError:
        for end in range(len(at), 0, -1):
            if at[:end] in self.overridden:
                return SweepError(message, path=self.overridden[at[:end]], key=dotted(at),
                                  hint=hint)
        return SweepError(message, path=self.doc.path, line=self.doc.line_of(at),
                          key=dotted(at) or None, hint=hint)

    def check_keys(self, data: Mapping[str, Any], at: KeyPath, known: Iterable[str]) -> None:
        """Refuse unknown keys, with a 'did you mean' hint."""
        known = list(known)
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(
                    sorted(known))
                raise self.error((*at, key), f"unknown key {key!r}", hint=hint)

    def mapping(self, value: object, at: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(at, f"must be a mapping, got {type_name(value)}")
        return value

    def string(self, value: object, at: KeyPath) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(at, f"must be a non-empty string, got {type_name(value)}")
        return value

    def integer(self, value: object, at: KeyPath, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(at, f"must be an integer, got {type_name(value)} {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(at, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value: object, at: KeyPath, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(at, f"must be a number, got {type_name(value)} {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error(at, f"must be a finite number, got {value}")
        if positive and value <= 0:
            raise self.error(at, f"must be greater than 0, got {value}")
        return float(value)

    def boolean(self, value: object, at: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(at, f"must be true or false, got {type_name(value)} {value!r}")
        return value

    def choice(self, value: object, at: KeyPath, choices: Iterable[str]) -> str:
        choices = list(choices)
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise self.error(at, f"must be one of {', '.join(choices)}; got {value!r}", hint=hint)
        return str(value)

    def string_list(self, value: object, at: KeyPath) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(at, f"must be a list, got {type_name(value)}")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict | list) or item is None:
                raise self.error((*at, i), f"must be a string, got {type_name(item)}")
            out.append(scalar_text(item))
        return tuple(out)


def scalar_text(item: object) -> str:
    """How a YAML scalar becomes an argv item or an environment value."""
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)
