"""results.parquet as a cache of the results table, for the read commands.

Building the table means parsing every record and every planned trial (seconds at
100,000 trials); reading the parquet file a finished run already has takes a tenth of
a second, and a single column (``launch ls`` needs only ``status``) milliseconds. The
file says in its metadata which table layout wrote it, whether it holds the table
exactly (mixed-type columns are stored as text, which is not), and how many bytes of
trials.jsonl it was built from: records are only ever appended, so an unchanged size
means no new record. Anything else and the table is built from the records again.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from launcher.store import RECORDS, RunDir, atomic_write

if TYPE_CHECKING:
    import pandas as pd

PARQUET = "results.parquet"
LAYOUT = b"1"  # bump when build_table's columns or types change
_LAYOUT, _EXACT, _SIZE = b"launcher.table", b"launcher.exact", b"launcher.records_bytes"


def records_size(run: RunDir) -> int:
    """Bytes of trials.jsonl now (0 when there is none)."""
    try:
        return (run.path / RECORDS).stat().st_size
    except FileNotFoundError:
        return 0


def write(run: RunDir, df: pd.DataFrame, size: int) -> None:
    """Write ``df`` (built from ``size`` bytes of records) to results.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    safe, exact = parquet_safe(df)
    table = pa.Table.from_pandas(safe, preserve_index=False)
    meta = {**(table.schema.metadata or {}), _LAYOUT: LAYOUT,
            _EXACT: b"1" if exact else b"0", _SIZE: str(size).encode()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    atomic_write(run.path / PARQUET, buf.getvalue())


def read(run: RunDir, columns: list[str] | None = None) -> pd.DataFrame | None:
    """The table (or some of its columns) when results.parquet is exact and up to date
    with the records; else None."""
    import pyarrow.parquet as pq

    path = run.path / PARQUET
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # missing, or not a parquet file we can read
        return None
    if meta.get(_LAYOUT) != LAYOUT or meta.get(_EXACT) != b"1" or \
            meta.get(_SIZE) != str(records_size(run)).encode():
        return None
    try:
        df: pd.DataFrame = pq.read_table(path, columns=columns).to_pandas()
    except (OSError, ValueError, KeyError):
        return None
    return df


def parquet_safe(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Parquet needs one type per column: mixed-type object columns become text (and
    the file then no longer holds the table exactly)."""
    out, exact = df, True
    for column in df.columns:
        if df[column].dtype == object:
            kinds = {type(v) for v in df[column].dropna()}
            if len(kinds) > 1:
                if exact:
                    out, exact = df.copy(), False
                out[column] = out[column].map(_text)
    return out, exact


def _text(value: Any) -> Any:
    return None if value is None else str(value)
