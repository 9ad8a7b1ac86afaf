"""Judging the succeeded trials of a table, group by group: which trials of the same
(config_id, seed) gave the same result, which is the reference, what differs.

Without tolerances (the default) equality is exact, so equal signatures can share a key
and the whole table is judged in a few column operations: linear in the trials. With
``rtol``/``atol`` equality is not transitive any more and each group is split into
classes pairwise (see :func:`launcher.signatures.classes`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from launcher.listing import short_image
from launcher.signatures import Signature, _key, classes, differences, exact_classes

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["run_id", "trial_id", "config_id", "seed", "replica", "host", "image_id",
           "group_size", "compared", "reference", "match", "differences", "files"]


def judge(ok: pd.DataFrame, metric_cols: list[str], rtol: float, atol: float,
          main_image: str) -> pd.DataFrame:
    """One row per succeeded trial (COLUMNS), in the order of the groups' first trials."""
    import pandas as pd

    if rtol or atol or not len(ok):
        out = pd.DataFrame(_judge_pairwise(ok, metric_cols, rtol, atol, main_image),
                           columns=COLUMNS)
    else:
        out = _judge_exact(ok.reset_index(drop=True), metric_cols, main_image)
    out["compared"] = out["compared"].astype(bool)
    return out


IDENTITY = ("run_id", "trial_id", "config_id", "seed", "replica", "host", "image_id", "files")


IDENTITY = ("run_id", "trial_id", "config_id", "seed", "replica", "host", "image_id", "files")


def _records(ok: pd.DataFrame, metric_cols: list[str]) -> list[dict[str, Any]]:
    """The rows as dicts, with only the columns judging needs."""
    needed = [c for c in (*IDENTITY, *metric_cols) if c in ok.columns]
    return [{str(k): v for k, v in raw.items()} for raw in ok[needed].to_dict("records")]


def _judge_pairwise(ok: pd.DataFrame, metric_cols: list[str], rtol: float, atol: float,
                    main_image: str) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for record in _records(ok, metric_cols):
        groups.setdefault((record["config_id"], record["seed"]), []).append(record)
    rows: list[dict[str, Any]] = []
    for records in groups.values():
        rows.extend(_judge_group(records, metric_cols, rtol, atol, main_image))
    return rows


def _judge_exact(ok: pd.DataFrame, metric_cols: list[str], main_image: str) -> pd.DataFrame:
    """Every group at once: a key per trial (its signature), the reference class of each
    group (the largest; the earliest among equals), differences only where they are."""
    import numpy as np
    import pandas as pd

    files = [f if isinstance(f, dict) else {} for f in ok["files"]] if "files" in ok \
        else [{} for _ in range(len(ok))]
    keys = [(tuple(_key(None if _missing(v) else _plain(v)) for v in values),
             frozenset(f.items()))
            for values, f in zip(ok[metric_cols].itertuples(index=False, name=None), files,
                                 strict=True)]
    code = pd.factorize(pd.Series(keys, dtype=object))[0]
    group = ok.groupby(["config_id", "seed"], sort=False, dropna=False).ngroup().to_numpy()
    pos = np.arange(len(ok))
    classes_ = pd.DataFrame({"group": group, "code": code, "pos": pos}).groupby(
        ["group", "code"]).agg(size=("pos", "size"), first=("pos", "min")).reset_index()
    ref = classes_.sort_values(["group", "size", "first"], ascending=[True, False, True]) \
        .drop_duplicates("group").set_index("group")
    size = np.bincount(group)[group]
    ref_pos = ref["first"].reindex(group).to_numpy()
    compared = size > 1
    names = _names(ok)
    image = ok["image_id"].fillna("").astype(str).to_numpy() if "image_id" in ok else \
        np.full(len(ok), "")
    diffs = [""] * len(ok)
    records: list[dict[str, Any]] | None = None
    odd = np.flatnonzero((compared & (code != ref["code"].reindex(group).to_numpy()))
                         | (image != main_image))
    for i in odd.tolist():  # the few trials that differ: say how
        records = records or _records(ok, metric_cols)
        found = differences(_signature(records[i], metric_cols),
                            _signature(records[ref_pos[i]], metric_cols)) \
            if compared[i] else []
        if image[i] != main_image:
            found.append(f"image {short_image(image[i]) or 'unknown'} (most trials: "
                         f"{short_image(main_image)})")
        diffs[i] = "; ".join(found)
    match = [not d if c or d else None for c, d in zip(compared.tolist(), diffs, strict=True)]
    host = ok["host"].astype(object).where(ok["host"].astype(bool), "(none)") \
        if "host" in ok else "(none)"
    out = pd.DataFrame({
        "run_id": ok.get("run_id", ""), "trial_id": ok["trial_id"],
        "config_id": ok["config_id"], "seed": ok["seed"],
        "replica": ok.get("replica"), "host": host,
        "image_id": image, "group_size": size, "compared": compared,
        "reference": np.where(compared & (pos != ref_pos), np.asarray(names)[ref_pos], ""),
        "match": match, "differences": diffs, "files": files}, columns=COLUMNS)
    return out.iloc[np.lexsort((pos, group))].reset_index(drop=True)


def _names(ok: pd.DataFrame) -> list[str]:
    """``run_id/trial_id`` of every row (see :func:`_name`)."""
    runs = ok["run_id"] if "run_id" in ok else [""] * len(ok)
    return [f"{r}/{t}" if r else str(t) for r, t in zip(runs, ok["trial_id"], strict=True)]


def _judge_group(records: list[dict[str, Any]], metric_cols: list[str], rtol: float,
                 atol: float, main_image: str) -> list[dict[str, Any]]:
    sigs = [_signature(r, metric_cols) for r in records]
    found = classes(sigs, rtol, atol) if rtol or atol else exact_classes(sigs)
    largest = max(found, key=len)  # the reference class; the earliest among equals
    reference, same = largest[0], set(largest)
    compared = len(records) > 1
    rows = []
    for i, record in enumerate(records):
        diffs = differences(sigs[i], sigs[reference], rtol, atol) \
            if compared and i not in same else []
        image = str(record.get("image_id") or "")
        if image != main_image:
            diffs.append(f"image {short_image(image) or 'unknown'} (most trials: "
                         f"{short_image(main_image)})")
        rows.append({
            "run_id": record.get("run_id", ""), "trial_id": record["trial_id"],
            "config_id": record["config_id"], "seed": record["seed"],
            "replica": record.get("replica"), "host": record.get("host") or "(none)",
            "image_id": image, "group_size": len(records), "compared": compared,
            "reference": _name(records[reference]) if compared and i != reference else "",
            "match": not diffs if compared or diffs else None,
            "differences": "; ".join(diffs), "files": record.get("files") or {}})
    return rows


def _name(record: dict[str, Any]) -> str:
    """``run_id/trial_id`` (the same trial id recurs in every run of a sweep)."""
    return f"{record['run_id']}/{record['trial_id']}" if record.get("run_id") else \
        str(record["trial_id"])


def _signature(record: dict[str, Any], metric_cols: list[str]) -> Signature:
    metrics = {c.removeprefix("metric."): _plain(record[c]) for c in metric_cols
               if not _missing(record[c])}
    return metrics, dict(record.get("files") or {})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        str(value) in ("<NA>", "nan")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
