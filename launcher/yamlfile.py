"""Safe YAML reading that remembers where every key came from.

Sweep files are small and hand-written, so the loader is strict: anchors, aliases and
tags (other than the plain core ones) are refused while the file is being composed,
which makes "billion laughs" files fail at once instead of expanding. Duplicate keys
are errors rather than silently overwritten. Every mapping key's line is kept so that
later validation can say ``sweep.yaml:12: unknown key 'replica'``.

Numbers follow the YAML 1.2 core schema, so ``1e-5``, ``1E5``, ``.5`` and ``-1e3`` are
numbers (PyYAML's YAML 1.1 reads the first two as strings); ``010`` is ten, ``0o10`` eight,
``0x1F`` thirty-one, and ``1_000`` or ``1:30`` stay strings. ``yes/no/on/off`` are
booleans, as PyYAML (and so W&B) reads them, with a note that says so and how to quote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from launcher.errors import SweepError

KeyPath = tuple[str | int, ...]
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_LIST_ITEMS = 100_000  # items of one list (values of one parameter), keys of one mapping
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}


@dataclass(frozen=True)
class YamlDoc:
    """Plain Python data (dicts, lists, scalars) and the 1-based line of each key path."""

    data: Any
    path: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # things worth a warning (``line N: ...``)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of ``key_path`` or of its nearest ancestor that has one."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(key_path[:end])
            if line is not None:
                return line
        return None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases, custom tags or timestamps; YAML 1.2 numbers;
    no deeper than MAX_DEPTH (the composer recurses: a deeply nested file would exhaust
    the stack)."""

    notes: list[str]
    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if self.depth >= MAX_DEPTH:
            raise _refusal(event, f"nested more than {MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            return self._compose_checked(event, parent, index)
        finally:
            self.depth -= 1

    def _compose_checked(self, event: Any, parent: Node | None, index: Any) -> Node | None:
        if isinstance(event, AliasEvent):
            raise _refusal(event, f"alias *{event.anchor} is not allowed in a sweep file")
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _refusal(event, f"anchor &{event.anchor} is not allowed in a sweep file")
        if isinstance(event, ScalarEvent | CollectionStartEvent):
            tag = event.tag
            if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
                raise _refusal(event, f"tag {tag!r} is not allowed in a sweep file")
        return super().compose_node(parent, index)


# YAML 1.2 core-schema numbers (https://yaml.org/spec/1.2.2/#1032-tag-resolution);
# dates and YAML 1.1 forms (1_000, 1:30, 0b1) stay strings, so a value reaches the trial
# as written.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN)$")
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off"})


def _core_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    kept = {_CORE + "null", _CORE + "bool"}
    out: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
        out[first] = [(tag, regexp) for tag, regexp in resolvers if tag in kept]
    for first in "-+0123456789.":
        out.setdefault(first, [])
        if first != ".":
            out[first].append((_CORE + "int", _INT_12))
        out[first].append((_CORE + "float", _FLOAT_12))
    return {first: resolvers for first, resolvers in out.items() if resolvers}


_StrictLoader.yaml_implicit_resolvers = _core_resolvers()


def _construct_int(loader: _StrictLoader, node: ScalarNode) -> int:
    text = str(node.value).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    try:
        if digits.startswith(("0o", "0x")):
            return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
        return sign * int(digits)
    except ValueError:
        raise _Refusal(node.start_mark.line + 1, f"{node.value!r} is not an integer") from None


def _construct_float(loader: _StrictLoader, node: ScalarNode) -> float:
    text = str(node.value).lower()
    if text.lstrip("+-") == ".inf":
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise _Refusal(node.start_mark.line + 1, f"{node.value!r} is not a number") from None


def _construct_bool(loader: _StrictLoader, node: ScalarNode) -> bool:
    text = str(node.value).lower()
    if text in _YAML11_BOOLS and node.style is None:
        loader.notes.append(f"line {node.start_mark.line + 1}: {node.value} is read as the "
                            f"boolean {text in ('yes', 'on')} (as W&B reads it); quote it "
                            f"('{node.value}') for the string")
    return text in ("yes", "on", "true")


_StrictLoader.add_constructor(_CORE + "int", _construct_int)
_StrictLoader.add_constructor(_CORE + "float", _construct_float)
_StrictLoader.add_constructor(_CORE + "bool", _construct_bool)


class _Refusal(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _refusal(event: Any, message: str) -> _Refusal:
    return _Refusal(event.start_mark.line + 1, message)


def read_yaml_file(path: str | Path) -> YamlDoc:
    """Read ``path`` strictly; every problem is a :class:`SweepError` with file and line."""
    shown = str(path)
    p = Path(path)
    if p.is_dir():
        raise SweepError("is a directory, not a sweep file", path=shown)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SweepError(f"file is {size} bytes; sweep files are limited to 4 MiB", path=shown)
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError("no such file", path=shown) from None
    except UnicodeDecodeError as e:
        raise SweepError(f"not UTF-8 text ({e.reason})", path=shown) from None
    except OSError as e:
        raise SweepError(f"cannot read: {e.strerror}", path=shown) from None
    return parse_yaml(text, shown)


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1 if event.start_mark else 1


def _prescan(text: str, path: str) -> None:
    """Refuse, in linear time and before the (slower) strict composer runs, a file nested
    deeper than MAX_DEPTH or with a list longer than MAX_LIST_ITEMS. Uses libyaml's event
    parser when it is there (about 1 s for 500,000 items; the composer takes a minute)."""
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is None:
        return  # the strict composer checks the depth itself
    loader = loader_class(text)
    counts: list[int] = []  # items in each open collection
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, NodeEvent) and counts:
                counts[-1] += 1
                if counts[-1] > 2 * MAX_LIST_ITEMS:  # a mapping counts keys and values
                    raise _Refusal(_line(event), f"more than {MAX_LIST_ITEMS:,} items in "
                                   "one list or mapping")
            if isinstance(event, CollectionStartEvent):
                counts.append(0)
                if len(counts) > MAX_DEPTH:
                    raise _Refusal(_line(event), f"nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, CollectionEndEvent):
                counts.pop()
    except yaml.YAMLError:
        return  # the strict parser reports syntax errors with their lines
    finally:
        loader.dispose()


def parse_yaml(text: str, path: str = "<string>") -> YamlDoc:
    """Parse one YAML document strictly (see the module docstring)."""
    try:
        _prescan(text, path)
    except _Refusal as e:
        raise SweepError(e.message, path=path, line=e.line) from None
    try:
        loader = _StrictLoader(text)
        loader.notes = []
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise SweepError(f"YAML error: {e.reason} (character #x{e.character:04x})",
                         path=path, line=line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(data=None, path=path)
        lines: dict[KeyPath, int] = {}
        data = _to_python(loader, node, (), lines)
    except _Refusal as e:
        raise SweepError(e.message, path=path, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "invalid YAML"
        raise SweepError(f"YAML syntax error{column}: {problem}", path=path, line=where) from None
    except yaml.YAMLError as e:
        raise SweepError("YAML error: " + " ".join(str(e).split()), path=path) from None
    except RecursionError:
        raise SweepError(f"nested too deeply (at most {MAX_DEPTH} levels)", path=path) from None
    finally:
        loader.dispose()
    return YamlDoc(data=data, path=path, lines=lines, notes=tuple(loader.notes))


def _to_python(loader: _StrictLoader, node: Node, at: KeyPath, lines: dict[KeyPath, int]) -> Any:
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Refusal(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in out:
                first = lines.get((*at, key))
                raise _Refusal(line, f"duplicate key {key!r} (first given on line {first})")
            lines[(*at, key)] = line
            out[key] = _to_python(loader, value_node, (*at, key), lines)
        return out
    if isinstance(node, SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*at, i)] = item.start_mark.line + 1
            items.append(_to_python(loader, item, (*at, i), lines))
        return items
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refusal(node.start_mark.line + 1,
                           "text contains a lone surrogate escape (not valid Unicode)") from None
    return value
