"""Aligning two runs by configuration when they share no trial (pure, no I/O).

Two runs of a sweep whose one parameter changed (``epochs: 150 -> 50``) share no
trial id: ids hash the parameters. They still share configurations on the other
parameters. :func:`parameter_changes` says what changed between the runs;
:func:`alignment_key` picks the parameters to align on (those both runs have with at
least one value in common); :func:`align_configs` puts the sweep's metric per
configuration and per run side by side (mean, std, n) and says whether the difference
is beyond the replicas' noise: ``|delta| > 2 * standard error of the difference``
(Welch's, with the std of the side that has replicas when only one has).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from launcher.trial import TrialStatus

if TYPE_CHECKING:
    import pandas as pd

OK = str(TrialStatus.SUCCEEDED)
MAX_VALUES_SHOWN = 6
NOISE_SIGMAS = 2.0
CONFIG_COLUMNS = ("configuration", "present", "n.a", "mean.a", "std.a", "n.b", "mean.b",
                  "std.b", "delta", "noise", "beyond_noise", "trials.a", "trials.b")


@dataclass(frozen=True)
class ParamChange:
    """One parameter whose values differ between the runs (None: absent in that run)."""

    name: str
    a: tuple[str, ...] | None
    b: tuple[str, ...] | None

    def text(self) -> str:
        return f"{self.name}: {_values_text(self.a)} -> {_values_text(self.b)}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "a": list(self.a) if self.a is not None else None,
                "b": list(self.b) if self.b is not None else None}


def _values_text(values: tuple[str, ...] | None) -> str:
    if values is None:
        return "(absent)"
    shown = ", ".join(values[:MAX_VALUES_SHOWN])
    return shown + (f", ... ({len(values)} values)" if len(values) > MAX_VALUES_SHOWN else "")


def canonical(value: Any) -> str:
    """A parameter value as comparable text: 150 and 150.0 are the same value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def param_values(df: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Parameter name -> its distinct values in the table, as sorted canonical text."""
    out = {}
    for column in (c for c in df.columns if c.startswith("param.")):
        values = {canonical(v) for v in df[column] if v is not None and v == v}
        out[column.removeprefix("param.")] = tuple(sorted(values, key=_order))
    return out


def _order(text: str) -> tuple[float, str]:
    try:
        return float(text), text
    except ValueError:
        return math.inf, text


def parameter_changes(a: pd.DataFrame, b: pd.DataFrame) -> list[ParamChange]:
    """Every parameter whose set of values differs between the runs, A's order first."""
    va, vb = param_values(a), param_values(b)
    return [ParamChange(n, va.get(n), vb.get(n)) for n in dict.fromkeys([*va, *vb])
            if va.get(n) != vb.get(n)]


def alignment_key(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The parameters to align configurations on: in both runs, with a value in common
    (a parameter changed outright, like epochs 150 -> 50, is what is being compared)."""
    va, vb = param_values(a), param_values(b)
    return [n for n in va if n in vb and set(va[n]) & set(vb[n])]


def config_label(row: dict[str, Any], key: list[str], varying: list[str]) -> str:
    """``lr=0.1 hidden=8`` over the key parameters that vary (all of them if none do)."""
    shown = [n for n in key if n in varying] or key
    return " ".join(f"{n}={row[f'param.{n}']}" for n in shown) or "(all trials)"


def align_configs(a: pd.DataFrame, b: pd.DataFrame, key: list[str], metric: str | None,
                  rtol: float = 0.0, atol: float = 0.0) -> pd.DataFrame:
    """One row per configuration (values of ``key``) of either run: CONFIG_COLUMNS plus
    the key's ``param.*`` columns; the metric's mean, std and n over succeeded trials."""
    import pandas as pd

    columns = [f"param.{n}" for n in key]
    varying = [n for n in key if len(set(param_values(a).get(n, ())) |
                                     set(param_values(b).get(n, ()))) > 1]
    sides = {"a": _per_config(a, columns, metric), "b": _per_config(b, columns, metric)}
    labels: dict[tuple[str, ...], dict[str, Any]] = {}
    for df in (a, b):
        for record in df.to_dict("records"):
            first = {str(k): v for k, v in record.items()}
            labels.setdefault(tuple(canonical(first[c]) for c in columns), first)
    rows = []
    for ident, first in labels.items():
        stats = {s: sides[s].get(ident) for s in ("a", "b")}
        row: dict[str, Any] = {"configuration": config_label(first, key, varying),
                               **{c: first[c] for c in columns},
                               "present": "both" if all(stats.values()) else
                               "a" if stats["a"] else "b"}
        for s in ("a", "b"):
            n, mean, std, trials = stats[s] or (0, math.nan, math.nan, 0)
            row.update({f"n.{s}": n, f"mean.{s}": mean, f"std.{s}": std, f"trials.{s}": trials})
        row.update(_difference(row, rtol, atol))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*CONFIG_COLUMNS[:1], *columns, *CONFIG_COLUMNS[1:]])


def _per_config(df: pd.DataFrame, columns: list[str], metric: str | None
                ) -> dict[tuple[str, ...], tuple[int, float, float, int]]:
    """Config key -> (succeeded trials with the metric, mean, std, trials)."""
    import pandas as pd

    out = {}
    column = f"metric.{metric}" if metric else None
    keys = [tuple(canonical(r[c]) for c in columns) for r in df.to_dict("records")]
    for ident in dict.fromkeys(keys):
        rows = df[[k == ident for k in keys]]
        ok = rows[rows["status"] == OK]
        values = pd.to_numeric(ok[column], errors="coerce").dropna() \
            if column and column in ok else ok["status"][:0]
        n = len(values) if column else len(ok)
        out[ident] = (n, float(values.mean()) if len(values) else math.nan,
                      float(values.std()) if len(values) > 1 else math.nan, len(rows))
    return out


def _difference(row: dict[str, Any], rtol: float, atol: float) -> dict[str, Any]:
    """delta (B - A), noise (NOISE_SIGMAS standard errors of the difference; NaN when
    neither side has two replicas) and beyond_noise (None when the noise is unknown)."""
    delta = row["mean.b"] - row["mean.a"]
    if math.isnan(delta):
        return {"delta": math.nan, "noise": math.nan, "beyond_noise": None}
    na, nb, sa, sb = row["n.a"], row["n.b"], row["std.a"], row["std.b"]
    if na > 1 and nb > 1:
        se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    elif na > 1 or nb > 1:
        s = sa if na > 1 else sb
        se = s * math.sqrt(1 / na + 1 / nb)
    else:
        return {"delta": delta, "noise": math.nan, "beyond_noise": None}
    noise = NOISE_SIGMAS * se
    tolerance = atol + rtol * abs(row["mean.a"])
    return {"delta": delta, "noise": noise,
            "beyond_noise": bool(abs(delta) > max(noise, tolerance))}


def config_regressions(table: pd.DataFrame, metric: str | None, goal: str,
                       rtol: float = 0.0, atol: float = 0.0) -> pd.DataFrame:
    """Configurations in both runs that stopped succeeding, or whose mean metric got
    worse by ``goal`` beyond the tolerance and not within the replicas' noise.
    Columns: configuration, kind, detail."""
    import pandas as pd

    rows = []
    for row in table[table["present"] == "both"].to_dict("records"):
        if row["n.a"] and not row["n.b"]:
            rows.append({"configuration": row["configuration"], "kind": "status",
                         "detail": f"{row['n.a']} succeeded in A, none in B"})
        elif metric and worse(row["mean.a"], row["mean.b"], goal, rtol, atol) and \
                _not_within_noise(row["beyond_noise"]):
            noise = "beyond the replicas' noise" if row["beyond_noise"] else \
                "noise unknown: fewer than 2 replicas"
            rows.append({"configuration": row["configuration"], "kind": "metric",
                         "detail": f"{metric} {row['mean.a']:.4g} -> {row['mean.b']:.4g} "
                                   f"({goal}; {noise})"})
    return pd.DataFrame(rows, columns=["configuration", "kind", "detail"])


def _not_within_noise(beyond: Any) -> bool:
    """True, or unknown (None or NaN: fewer than two replicas on both sides)."""
    return beyond is None or beyond != beyond or bool(beyond)


def worse(before: Any, after: Any, goal: str, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """True when ``after`` is worse than ``before`` by ``goal`` beyond the tolerance."""
    try:
        a, b = float(before), float(after)
    except (TypeError, ValueError):
        return False
    if a != a or b != b:  # NaN: a missing value is not a measurable regression
        return False
    if abs(b - a) <= atol + rtol * abs(a):
        return False
    return b < a if goal == "maximize" else b > a
