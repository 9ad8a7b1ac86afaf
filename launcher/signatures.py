"""Comparing the results of two trials: metrics (exactly, or within tolerances) and the
sha256 of their output files. Pure: no run directories, no pandas."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Signature = tuple[dict[str, Any], dict[str, str]]  # (metrics, {relative path: sha256})


def values_match(value: Any, reference: Any, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """Equal, or for real numbers within ``atol + rtol * |reference|`` (NaN equals NaN)."""
    if _is_real(value) and _is_real(reference):
        a, b = float(value), float(reference)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if rtol == 0 and atol == 0:
            return bool(value == reference)
        return abs(a - b) <= atol + rtol * abs(b)
    return bool(value == reference)


def _is_real(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None \
        and value.dtype.kind in "iuf"


def differences(sig: Signature, ref: Signature, rtol: float = 0.0,
                atol: float = 0.0) -> list[str]:
    """What differs between a trial's signature and the reference's, one phrase each."""
    out = []
    metrics, ref_metrics = sig[0], ref[0]
    for name in sorted(metrics.keys() | ref_metrics.keys()):
        if name not in metrics or name not in ref_metrics:
            out.append(f"metric {name} only in {'this' if name in metrics else 'reference'}")
        elif not values_match(metrics[name], ref_metrics[name], rtol, atol):
            out.append(f"{name} {metrics[name]!r} vs {ref_metrics[name]!r}")
    files, ref_files = sig[1], ref[1]
    for name in sorted(files.keys() | ref_files.keys()):
        if name not in files or name not in ref_files:
            out.append(f"file {name} only in {'this' if name in files else 'reference'}")
        elif files[name] != ref_files[name]:
            out.append(f"file {name}")
    return out


def classes(signatures: Sequence[Signature], rtol: float = 0.0,
            atol: float = 0.0) -> list[list[int]]:
    """Indices grouped into classes of matching signatures (each compared with its class's
    first member), in order of first appearance."""
    found: list[list[int]] = []
    for i, sig in enumerate(signatures):
        home = next((c for c in found if not differences(sig, signatures[c[0]], rtol, atol)),
                    None)
        if home is None:
            found.append([i])
        else:
            home.append(i)
    return found


def exact_classes(signatures: Sequence[Signature]) -> list[list[int]]:
    """:func:`classes` without tolerances, in one pass: equal signatures share a key
    (numbers by value, NaN equal to NaN, as :func:`values_match` compares them)."""
    found: dict[Any, list[int]] = {}
    for i, (metrics, files) in enumerate(signatures):
        key = (frozenset((k, _key(v)) for k, v in metrics.items()), frozenset(files.items()))
        found.setdefault(key, []).append(i)
    return list(found.values())


def _key(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
