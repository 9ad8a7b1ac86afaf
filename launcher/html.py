"""The HTML building blocks of the report and the scale page: one inline style sheet,
images as data URIs, tables, sections that collapse to one line when empty. Nothing
here references a file or a URL, so every page is one self-contained file."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from launcher.verify import Verification

# Verdict colours follow the plots' palette (blue = good, vermillion = bad): never
# red against green.
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:4px 0 2px}h2{font-size:19px;margin:32px 0 8px;
border-bottom:1px solid #e3e3e3;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.note{color:#555;font-size:14px}
.empty{color:#666;font-size:14px;margin:14px 0;padding:6px 0;border-top:1px solid #eee}
.verdict{font-size:17px;padding:10px 14px;border-radius:6px;margin:8px 0}
.ok{background:#e3eef8;color:#003e66;border-left:6px solid #0072B2}
.bad{background:#fbe9df;color:#7a2e00;border-left:6px solid #D55E00}
.live{background:#fff6dc;color:#5b4500;padding:8px 14px;border-radius:6px;margin:8px 0}
img{max-width:100%;height:auto;display:block;margin:8px 0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{color:#666;padding-right:18px}
pre{background:#f6f7f9;padding:10px 12px;border-radius:6px;overflow-x:auto;font-size:12px;
margin:6px 0;white-space:pre-wrap;word-break:break-all}
td pre{margin:0;max-width:520px;font-size:11px}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def img(data: bytes | None, alt: str) -> str:
    """An image as a data URI: SVG (what plots.py makes) or PNG."""
    if not data:
        return ""
    kind = "png" if data.startswith(b"\x89PNG") else "svg+xml"
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img src=\"data:image/{kind};base64,{encoded}\" alt=\"{esc(alt)}\">"


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def empty(title: str, why: str) -> str:
    """A section with nothing to show: one line, not a box."""
    return f"<p class=\"empty\"><b>{esc(title)}:</b> {esc(why)}</p>"


def note(text: str) -> str:
    return f"<p class=\"note\">{esc(text)}</p>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def html_table(df: pd.DataFrame, max_rows: int = 20, raw: tuple[str, ...] = ()) -> str:
    """A table; columns in ``raw`` hold HTML already (escaped by the caller)."""
    from launcher.results import plain_rows
    from launcher.tables import cell

    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    raw_at = {i for i, c in enumerate(df.columns) if c in raw}
    for row in plain_rows(df.head(max_rows)):
        cells = "".join(f"<td>{v or ''}</td>" if i in raw_at else
                        f"<td class=\"num\">{esc(cell(v))}</td>" if isinstance(v, int | float)
                        else f"<td>{esc(cell(v))}</td>" for i, v in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    more = note(f"... {len(df) - max_rows} more rows") if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def facts_table(facts: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts)
    return f"<table class=\"facts\">{rows}</table>"


def verdict(v: Verification) -> str:
    """The reproducibility verdict: a coloured box when something was compared, a plain
    line when nothing could be."""
    if v.compared == 0:
        return note(v.verdict)
    return f"<p class=\"verdict {'ok' if v.ok else 'bad'}\">{esc(v.verdict)}</p>"


def page(title: str, body: str, *, reload_seconds: int | None = None) -> str:
    """A whole HTML page; ``reload_seconds`` makes the browser reload it (a live run)."""
    refresh = (f"<meta http-equiv=\"refresh\" content=\"{reload_seconds}\">"
               if reload_seconds else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"{body}</main></body></html>\n")
