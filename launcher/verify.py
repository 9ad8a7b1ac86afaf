"""Reproducibility: did the same configuration and seed give the same result everywhere?

    from launcher.verify import verify_runs
    v = verify_runs(["results/replicas/20261130-102412-1abe"])
    v.ok, v.verdict          # True, "30/30 trials on 3 hosts reproduce: ..."
    v.df                     # one row per succeeded trial: group, reference, match, differences
    v.matrix()               # host x seed: matching/compared trials per cell
    print(v.summary())       # what `launch verify` prints

Succeeded trials of the given runs are grouped by (config_id, seed). Within a group the
trials are split into classes of equal results (metrics equal, exactly or within
``rtol``/``atol``, and equal sha256 of every output file except the ``ignore``d names);
the largest class is the reference and every trial outside it differs. Every trial must
also have run on the same image ID as the majority. Pure where it can be:
:func:`verify_table` works on a DataFrame and is what the unit tests drive.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.defaults import RESULTS_ROOT
from launcher.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from launcher.judging import judge
from launcher.listing import short_image
from launcher.signatures import Signature as Signature
from launcher.signatures import classes as classes
from launcher.signatures import differences as differences
from launcher.signatures import exact_classes as exact_classes
from launcher.signatures import values_match as values_match
from launcher.trial import METRICS_FILE, TrialStatus

if TYPE_CHECKING:
    import pandas as pd

    from launcher.store import RunDir

HOW_TO_COMPARE = ("give the trials partners: `seed_mode: fixed` with `replicas` > 1 makes "
                  "replicas share a seed, or verify two runs of the same sweep: "
                  "`launch verify RUN_A RUN_B`")


# -- the verification of a table (pure) ----------------------------------------------------
@dataclass(frozen=True)
class Verification:
    """The result of a reproducibility check; read-only. ``df`` has one row per succeeded
    trial with ``group_size``, ``compared``, ``reference`` (``run_id/trial_id`` of the
    trial it was compared with), ``match`` (None when it had no partner) and ``differences``."""

    runs: tuple[str, ...]
    df: pd.DataFrame
    left_out: dict[str, int]
    image_ids: dict[str, int]
    rtol: float = 0.0
    atol: float = 0.0
    ignored: tuple[str, ...] = ()

    @property
    def compared(self) -> int:
        return int(self.df["compared"].sum()) if len(self.df) else 0

    @property
    def matching(self) -> int:
        return int((self.df["compared"] & (self.df["match"] == True)).sum()) \
            if len(self.df) else 0  # noqa: E712 - match holds True, False or None

    @property
    def differing(self) -> pd.DataFrame:
        return self.df[self.df["match"] == False]  # noqa: E712

    @property
    def hosts(self) -> list[str]:
        return sorted({str(h) for h in self.df.loc[self.df["compared"], "host"]}) \
            if len(self.df) else []

    @property
    def exit_code(self) -> int:
        """1 when anything differs, 2 when nothing could be compared, else 0."""
        if len(self.differing):
            return EXIT_FAILURE
        return EXIT_USAGE if self.compared == 0 else EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def verdict(self) -> str:
        """One line: what reproduced (or did not) on how many hosts, and the image."""
        if len(self.differing):
            kinds = Counter(k for d in self.differing["differences"] for k in _kinds(d))
            what = ", ".join(f"{k} {'differs' if k == 'image' else 'differ'} in {n}"
                             for k, n in sorted(kinds.items()))
            return (f"{len(self.differing)}/{max(self.compared, len(self.differing))} trials "
                    f"do not reproduce ({what}){self._across()}")
        if self.compared == 0:
            return (f"nothing to compare: no (config_id, seed) has two succeeded trials "
                    f"among {len(self.df)}; {HOW_TO_COMPARE}")
        n = len(self.hosts)
        images = ", ".join(short_image(i) for i in self.image_ids) or "unknown"
        return (f"{self.matching}/{self.compared} trials on {n} host{'s' if n != 1 else ''} "
                f"reproduce{self._across()}: {self._what()}, image {images}")

    def _across(self) -> str:
        return f" across {len(self.runs)} runs" if len(self.runs) > 1 else ""

    def _what(self) -> str:
        metrics = ("identical metrics" if self.rtol == 0 and self.atol == 0 else
                   f"metrics within rtol={self.rtol:g} atol={self.atol:g}")
        has_files = any(bool(f) for f in self.df["files"]) if "files" in self.df else False
        if not has_files:
            return f"{metrics} (no output files to compare)"
        skipped = f" (without {', '.join(self.ignored)})" if self.ignored else ""
        if metrics.startswith("identical"):
            return f"identical metrics and outputs{skipped}"
        return f"{metrics} and identical output files{skipped}"

    def notes(self) -> list[str]:
        """What was left out, and why."""
        out = []
        if self.left_out:
            parts = ", ".join(f"{s} {n}" for s, n in sorted(self.left_out.items()))
            out.append(f"left out {sum(self.left_out.values())} trials that did not succeed "
                       f"({parts})")
        alone = int((~self.df["compared"]).sum()) if len(self.df) else 0
        if alone and self.compared:
            out.append(f"{alone} trials have no partner with the same config_id and seed and "
                       "were not compared")
        if len(self.image_ids) > 1:
            parts = ", ".join(f"{short_image(i)} ({n} trials)" for i, n in self.image_ids.items())
            out.append(f"trials ran on {len(self.image_ids)} different images: {parts}")
        if (self.rtol or self.atol) and METRICS_FILE in self.ignored:
            out.append(f"{METRICS_FILE} is compared through the metrics (with tolerances), "
                       "not byte for byte")
        return out

    def matrix(self) -> pd.DataFrame:
        """Host x seed; a cell is matching/compared trials, "-" when its trials had no
        partner, empty when no trial ran there."""
        import pandas as pd

        if not len(self.df):
            return pd.DataFrame()
        cells = self.cells()
        text = cells.apply(lambda r: f"{r.matching}/{r.compared}" if r.compared else "-", axis=1)
        return cells.assign(cell=text).pivot(index="host", columns="seed", values="cell") \
            .fillna("")

    def cells(self) -> pd.DataFrame:
        """Long form of the matrix: host, seed, trials, compared, matching."""
        df = self.df.assign(matched=self.df["compared"] & (self.df["match"] == True))  # noqa: E712
        return df.groupby(["host", "seed"]).agg(
            trials=("trial_id", "size"), compared=("compared", "sum"),
            matching=("matched", "sum")).reset_index()

    def summary(self) -> str:
        """The text `launch verify` prints: matrix, differing trials, notes, verdict."""
        return render_summary(self)

    def to_json(self) -> dict[str, Any]:
        """What `launch verify --json` prints."""
        import json

        cells = json.loads(self.cells().to_json(orient="records")) if len(self.df) else []
        differing = self.differing[["run_id", "trial_id", "host", "seed", "reference",
                                    "differences"]]
        return {"runs": list(self.runs), "verdict": self.verdict, "ok": self.ok,
                "exit_code": self.exit_code, "compared": self.compared,
                "matching": self.matching, "hosts": self.hosts,
                "image_ids": self.image_ids, "left_out": self.left_out,
                "differing": json.loads(differing.to_json(orient="records")),
                "matrix": cells, "notes": self.notes()}


def _kinds(description: str) -> list[str]:
    parts = description.split("; ")
    kinds = {"image" if p.startswith("image ") else "outputs" if p.startswith("file ")
             else "metrics" for p in parts if p}
    return sorted(kinds)


def verify_table(df: pd.DataFrame, *, rtol: float = 0.0, atol: float = 0.0,
                 ignored: Iterable[str] = (), runs: Sequence[str] = ()) -> Verification:
    """Verify a trials table: columns run_id, trial_id, config_id, seed, host, image_id,
    status, ``metric.*`` and ``files`` (a dict of relative path to sha256 per trial)."""

    ok = df[df["status"] == str(TrialStatus.SUCCEEDED)]
    left_out = {str(k): int(v) for k, v in
                df.loc[df["status"] != str(TrialStatus.SUCCEEDED), "status"].value_counts()
                .items()}
    images = Counter(str(i) for i in ok["image_id"].fillna(""))
    main_image = images.most_common(1)[0][0] if images else ""
    metric_cols = [c for c in ok.columns if c.startswith("metric.")]
    out = judge(ok, metric_cols, rtol, atol, main_image)
    return Verification(tuple(runs), out, left_out, dict(images.most_common()), rtol, atol,
                        tuple(ignored))


# -- loading runs ----------------------------------------------------------------------------
def verify_runs(runs: Sequence[str | Path], results_root: str | Path = RESULTS_ROOT, *,
                rtol: float = 0.0, atol: float = 0.0,
                ignore: Sequence[str] = ()) -> Verification:
    """Verify one run or several (run directories, or run ids or prefixes).

    With a tolerance, metrics.json is compared through the metrics rather than byte
    for byte (its bytes hold the very numbers the tolerance is for).
    """
    import pandas as pd

    from launcher.store import find_run

    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must be >= 0")
    dirs = [find_run(str(r), Path(results_root)) for r in runs]
    if not dirs:
        raise UsageError("verify needs at least one run", hint="`launch ls` lists them")
    paths = [d.path.resolve() for d in dirs]
    if len(set(paths)) != len(paths):
        raise UsageError("the same run is given twice", hint="give each run once")
    skip = tuple(ignore) + ((METRICS_FILE,) if (rtol or atol) and METRICS_FILE not in ignore
                            else ())
    table = pd.concat([trials_with_files(d, skip) for d in dirs], ignore_index=True)
    return verify_table(table, rtol=rtol, atol=atol, ignored=skip,
                        runs=[str(d.path) for d in dirs])


def trials_with_files(run: RunDir, ignore: Sequence[str] = ()) -> pd.DataFrame:
    """A run's results table with ``run_id`` and the ``files`` hashes of succeeded trials
    (hashed HASH_WORKERS trials at a time: the work is reading files)."""
    from concurrent.futures import ThreadPoolExecutor

    from launcher.results import load_table

    df = load_table(run)  # has run_id (and is the cached table of a finished run)
    ok = df["status"] == str(TrialStatus.SUCCEEDED)
    folder = run.path / "outputs"
    todo = [str(t) for t, good in zip(df["trial_id"], ok, strict=True) if good]
    chunks = [todo[i:i + HASH_CHUNK] for i in range(0, len(todo), HASH_CHUNK)]

    def hash_chunk(ids: list[str]) -> list[dict[str, str]]:
        return [hash_outputs(folder / t, ignore) for t in ids]

    with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
        hashed = dict(zip(todo, (h for part in pool.map(hash_chunk, chunks) for h in part),
                          strict=True))
    files: list[Any] = [hashed.get(str(t), {}) for t in df["trial_id"]]
    df["files"] = files
    return df


HASH_CHUNK = 500  # trials per task: a task per trial would cost more than its hashing
HASH_WORKERS = 4


def hash_outputs(folder: Path, ignore: Sequence[str] = ()) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path, leaving out files whose
    name or relative path matches an ``ignore`` pattern (shell wildcards allowed)."""
    found: list[tuple[str, str]] = []  # (relative path, absolute path)
    _files(str(folder), "", found)
    out = {}
    for rel, path in sorted(found):
        name = rel.rsplit("/", 1)[-1]
        if ignore and any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat)
                          for pat in ignore):
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        out[rel] = digest.hexdigest()
    return out


def _files(folder: str, prefix: str, out: list[tuple[str, str]]) -> None:
    """Regular files under ``folder`` (not following links), depth first."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            _files(entry.path, rel + "/", out)
        elif entry.is_file(follow_symlinks=False):
            out.append((rel, entry.path))


def render_summary(v: Verification, max_listed: int = 50) -> str:
    """Matrix (transposed when there are many seeds), differing trials, notes, verdict."""
    from launcher.results import frame_text

    lines = []
    matrix = v.matrix()
    if len(matrix):
        wide = len(matrix.columns) > 12
        shown = matrix.T if wide else matrix
        label = "seed \\ host" if wide else "host \\ seed"
        shown = shown.reset_index()
        shown.columns = [label, *(str(c) for c in list(shown.columns)[1:])]
        lines.append(frame_text(shown).rstrip())
        lines.append("")
    for row in v.differing.head(max_listed).to_dict("records"):
        ref = f" vs {row['reference']}" if row["reference"] else ""
        lines.append(f"differs: {row['run_id']}/{row['trial_id']} host {row['host']} "
                     f"seed {row['seed']}{ref}: {row['differences']}")
    if len(v.differing) > max_listed:
        lines.append(f"... and {len(v.differing) - max_listed} more (see Verification.df)")
    lines.extend(f"note: {n}" for n in v.notes())
    lines.append(v.verdict)
    return "\n".join(lines) + "\n"
