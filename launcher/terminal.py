"""Tables for a terminal: as many columns as fit its width, long cells cut with an
ellipsis, and one line that names the columns left out (csv and json show them all).

Rendered with rich (imported here, so only commands that print a table pay for it);
colour only on a terminal and never when ``NO_COLOR`` is set. ``launch plan`` keeps the
plain streaming writer of tables.py: it prints up to a million rows.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from launcher.tables import cell

MAX_CELL = 36  # characters a cell may take before it is cut with an ellipsis
GAP = 2


def width_of(out: TextIO | None = None) -> int:
    """The terminal's width (``COLUMNS`` wins; 100 when there is no terminal)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return max(40, int(os.environ["COLUMNS"]))
    stream = out or sys.stdout
    try:
        if stream.isatty():
            return shutil.get_terminal_size((100, 24)).columns
    except (AttributeError, ValueError):
        pass
    return 100


def use_color(out: TextIO) -> bool:
    """Colour only on a terminal and only without NO_COLOR (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def fit_columns(columns: Sequence[str], rows: Sequence[Sequence[str]],
                width: int) -> list[int]:
    """Indices of the columns to show: in the given order (callers put the important
    ones first) while their natural widths fit ``width``; always the first one."""
    chosen: list[int] = []
    used = 0
    for i, name in enumerate(columns):
        natural = min(MAX_CELL, max([len(name), *(len(r[i]) for r in rows)]))
        if chosen and used + GAP + natural > width:
            continue
        chosen.append(i)
        used += natural + (GAP if len(chosen) > 1 else 0)
    return chosen


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                 width: int | None = None, color: bool = False) -> str:
    """The table as text that fits ``width`` (default: the terminal's)."""
    from rich.console import Console
    from rich.table import Table

    width = width or width_of()
    text_rows = [[cell(v) for v in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
               for i in range(len(columns))]
    keep = fit_columns(columns, text_rows, width)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                  padding=(0, GAP, 0, 0))
    for i in keep:
        table.add_column(columns[i], justify="right" if numeric[i] else "left",
                         no_wrap=True, overflow="ellipsis", max_width=MAX_CELL)
    for row in text_rows:
        table.add_row(*(row[i] for i in keep))
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False)
    console.print(table)
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
    left_out = [c for i, c in enumerate(columns) if i not in keep]
    if left_out:
        text += omitted_note(left_out, width)
    return text


def omitted_note(names: Sequence[str], width: int) -> str:
    """``(+3 columns: a, b, c; --format csv or json shows every column)``, cut to width."""
    line = (f"(+{len(names)} column{'s' if len(names) != 1 else ''}: {', '.join(names)}; "
            "--format csv or json shows every column)")
    return (line if len(line) <= width else line[:width - 2] + "…)") + "\n"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                out: TextIO) -> None:
    out.write(render_table(columns, rows, width=width_of(out), color=use_color(out)))
