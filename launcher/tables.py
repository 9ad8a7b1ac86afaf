"""Plain-text renderings of row data: aligned table, CSV, JSON, Markdown.

Deliberately free of pandas and rich so that ``launch plan`` of 100,000 trials
streams out fast and pipes cleanly.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMATS = ("table", "csv", "json", "markdown")


def cell(value: Any) -> str:
    """One value as text: floats short, None empty, structures as compact JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def exact(value: Any) -> str:
    """One value as text without losing precision (for CSV)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def write_rows(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               fmt: str) -> None:
    """Write ``rows`` under ``columns`` in one of FORMATS."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([exact(v) for v in row])
    elif fmt == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], out, indent=1,
                  ensure_ascii=False, default=str)
        out.write("\n")
    elif fmt == "markdown":
        out.write("| " + " | ".join(columns) + " |\n")
        out.write("|" + "|".join("---" for _ in columns) + "|\n")
        for row in rows:
            out.write("| " + " | ".join(cell(v).replace("|", "\\|") for v in row) + " |\n")
    else:
        text_rows = [[cell(v) for v in row] for row in rows]
        widths = [len(c) for c in columns]
        for row in text_rows:
            widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        out.write("\n")
        for row in text_rows:
            out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
            out.write("\n")


def render_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> str:
    buf = io.StringIO()
    write_rows(buf, columns, rows, fmt)
    return buf.getvalue()
