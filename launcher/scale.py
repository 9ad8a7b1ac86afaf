"""The scaling demo: run one sweep at several sizes, measure wall time and containers per
second against N, compare with the ideal, and verify that equal seeds gave equal metrics
across the sizes.

    from launcher.scale import scale_sweep
    study = scale_sweep("experiments/replicas.yaml", [1, 10, 50])
    study.df            # N, run_id, trials, succeeded, wall_s, containers_per_s, ideal_s, ...
    study.verification  # launcher.verify.Verification over every size's run
    study.plot          # the SVG next to the runs (and study.page, an HTML page with it)

Wall time runs from the first container start to the last finish of a size's run (the
image build and host set-up are the same for every size and left out). The ideal is
what the slots could do with the containers as they really ran at that size: the
measured container times, perfectly packed, ``ideal_s = max(longest container,
sum of container times / slots)``. No schedule can beat it, so efficiency
``ideal_s / wall_s`` is at most 1, and what it misses is the launcher's own overhead
(start-up, collection, gaps between containers), not slower containers.

Ctrl-C stops the whole study (exit 130): the size that was running is an interrupted
run (resumable), nothing is plotted from it, and ``resume=True`` (`launch scale ...
--resume`) continues the study: finished sizes are kept, the interrupted one resumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, UsageError
from launcher.store import RunDir, RunState, atomic_write
from launcher.store.study import StudyFile, unfinished_study

if TYPE_CHECKING:
    import pandas as pd

    from launcher.overrides import Overrides
    from launcher.spec import SweepSpec
    from launcher.verify import Verification

COLUMNS = ("N", "run_id", "trials", "succeeded", "slots", "wall_s", "containers_per_s",
           "ideal_s", "ideal_per_s", "efficiency")
# What a terminal shows first (it fits what it can): the measurement, then the bookkeeping.
SHOWN = ("N", "wall_s", "ideal_s", "efficiency", "containers_per_s", "ideal_per_s",
         "succeeded", "trials", "slots", "run_id")


def parse_sizes(text: str) -> list[int]:
    """``"1,10,50,100"`` -> [1, 10, 50, 100] (each at least 1, no repeats)."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--replicas takes sizes like 1,10,50,100, not {text!r}") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise UsageError(f"--replicas takes distinct sizes of at least 1, not {text!r}")
    return sorted(sizes)


@dataclass(frozen=True)
class ScaleStudy:
    """The measurements of a scaling study; read-only. An interrupted study has the
    finished sizes only in ``df``, and no plot or page."""

    df: pd.DataFrame
    verification: Verification | None
    plot: Path | None
    page: Path | None
    interrupted_at: int | None = None  # the size Ctrl-C stopped
    resume_command: str = ""

    @property
    def failed_trials(self) -> int:
        return int((self.df["trials"] - self.df["succeeded"]).sum()) if len(self.df) else 0

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when verification found differences or a trial
        failed, else 0."""
        if self.interrupted_at is not None:
            return EXIT_INTERRUPTED
        bad = self.verification is not None and self.verification.exit_code == EXIT_FAILURE
        return EXIT_FAILURE if bad or self.failed_trials else EXIT_OK

    def summary(self) -> str:
        from launcher.results import frame_text

        lines = []
        if len(self.df):
            shown = self.df[list(SHOWN)].round({"wall_s": 2, "containers_per_s": 2,
                                                "ideal_s": 2, "ideal_per_s": 2,
                                                "efficiency": 2})
            lines += [frame_text(shown).rstrip(), ""]
        if self.interrupted_at is not None:
            return "\n".join([*lines, f"interrupted at N={self.interrupted_at}: that size "
                              "is not measured and nothing was plotted",
                              f"continue the study with: {self.resume_command}"]) + "\n"
        if self.failed_trials:
            lines.append(f"{self.failed_trials} trials did not succeed")
        assert self.verification is not None
        lines += [f"note: {n}" for n in self.verification.notes()]
        lines += [f"verify: {self.verification.verdict}", f"plot: {self.plot}",
                  f"page: {self.page}"]
        return "\n".join(lines) + "\n"


def scale_sweep(sweep: str | Path, sizes: Sequence[int], overrides: Overrides | None = None,
                *, resume: bool = False, progress: str = "quiet",
                on_size: Callable[[str], None] | None = None) -> ScaleStudy:
    """Run ``sweep`` once per size (``replicas`` = N), then measure, plot and verify."""
    from launcher.overrides import Overrides
    from launcher.spec import load_sweep

    base = overrides or Overrides()
    spec = load_sweep(sweep, base)
    folder = Path(spec.results) / spec.folder
    sha = hashlib.sha256(spec.source_text.encode()).hexdigest()
    wanted = tuple(sorted(sizes))
    study = unfinished_study(folder, spec.source_path, sha, wanted) if resume else None
    say = on_size or (lambda line: None)
    if study is None:
        study = StudyFile.new(folder, spec.source_path, sha, wanted).save()
        say(f"scale study {study.stem}: N = {', '.join(map(str, wanted))}")
    else:
        say(f"continuing scale study {study.stem} (done: "
            f"{', '.join(f'N={n}' for n in study.runs) or 'nothing yet'})")
    again = f"launch scale {sweep} --replicas {','.join(map(str, wanted))} --resume"
    for n in wanted:
        study, stopped = _run_size(study, n, sweep, replace(base, replicas=n), folder,
                                   progress, say)
        if stopped:
            study.ended("interrupted").save()
            done = [(m, folder / study.runs[m]) for m in wanted if m < n]
            return ScaleStudy(measure(done), None, None, None, n, again)
    return _finish(study.ended("finished").save(), spec, folder)


def _run_size(study: StudyFile, n: int, sweep: str | Path, overrides: Overrides,
              folder: Path, progress: str, say: Callable[[str], None]
              ) -> tuple[StudyFile, bool]:
    """Run (or reuse, or resume) size ``n``; True when Ctrl-C stopped it."""
    from launcher.api import resume_run, run_sweep

    previous = study.runs.get(n)
    state = RunDir(folder / previous).state() if previous else None
    if state is RunState.FINISHED or state is RunState.STOPPED:
        say(f"scale: N={n} already done: {previous}")
        return study, False
    try:
        if previous:
            say(f"scale: N={n}: resuming run {previous}")
            results = resume_run(folder / previous, folder.parent, progress=progress)
        else:
            say(f"scale: N={n}")
            results = run_sweep(sweep, overrides, progress=progress,
                                on_run=lambda line: say(f"scale: N={n}: {line}"))
    except KeyboardInterrupt:  # between runs (build, set-up): no run of this size yet
        return study, True
    study = study.with_run(n, results.run_id).save()
    if results.interrupted:
        return study, True
    say(f"scale: N={n} done: {results.run_dir}")
    return study, False


def _finish(study: StudyFile, spec: SweepSpec, folder: Path) -> ScaleStudy:
    from launcher.verify import verify_runs

    runs = [(n, folder / study.runs[n]) for n in study.sizes]
    table = measure(runs)
    verification = verify_runs([path for _, path in runs])
    plot = folder / f"{study.stem}.svg"
    atomic_write(plot, scale_plot(table))
    page = folder / f"{study.stem}.html"
    atomic_write(page, scale_page(table, verification, plot.read_bytes(),
                                  describe(spec, RunDir(runs[-1][1]))))
    return ScaleStudy(table, verification, plot, page)


def measure(runs: Sequence[tuple[int, Path]]) -> pd.DataFrame:
    """One row per size (columns: COLUMNS) from the runs' tables and manifests."""
    import pandas as pd

    from launcher.results import build_table
    from launcher.timeline import spans

    rows = []
    for n, path in sorted(runs):
        run = RunDir(Path(path))
        df = build_table(run)
        items = spans(df)
        wall = max((e for _, e, _, _ in items), default=0.0)
        slots = run.manifest().slots
        ideal = ideal_seconds([e - s for s, e, _, _ in items], slots)
        rows.append({"N": n, "run_id": run.run_id, "trials": len(df),
                     "succeeded": int((df["status"] == "succeeded").sum()), "slots": slots,
                     "wall_s": wall, "containers_per_s": len(items) / wall if wall else None,
                     "ideal_s": ideal, "ideal_per_s": len(items) / ideal if ideal else None,
                     "efficiency": ideal / wall if wall else None})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def ideal_seconds(durations: Sequence[float], slots: int) -> float:
    """The shortest wall time ``slots`` could run these containers in: never shorter
    than the longest one, nor than all of them spread evenly over the slots."""
    if not durations:
        return 0.0
    return max(max(durations), sum(durations) / max(1, slots))


def describe(spec: SweepSpec, run: RunDir) -> list[tuple[str, str]]:
    """What the page says the study ran: sweep, hosts and engines, date, image."""
    manifest = run.manifest()
    hosts = "; ".join(f"{h.name} (Docker {h.engine_version or '?'}, {h.cpus or '?'} CPUs, "
                      f"{h.slots} slots)" for h in manifest.hosts) or manifest.backend
    return [("sweep", f"{spec.name} ({spec.source_path})"), ("hosts", hosts),
            ("backend", manifest.backend), ("date", str(manifest.created_at)),
            ("image", f"{manifest.image.id} ({manifest.image.tag or ''})")]


def scale_plot(df: pd.DataFrame) -> bytes:
    """Wall time and containers per second against N, each with the ideal line."""
    from launcher.plots import BLUE, GREEN, GREY, figure, style, svg

    fig = figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    n = df["N"].to_numpy()
    left.plot(n, df["wall_s"].to_numpy(), "-o", color=BLUE, label="measured")
    left.plot(n, df["ideal_s"].to_numpy(), "--", color=GREY, label="ideal (measured "
              "container times, perfectly packed)")
    style(left, "wall time", "N (containers)", "seconds")
    right.plot(n, df["containers_per_s"].to_numpy(), "-o", color=GREEN, label="measured")
    right.plot(n, df["ideal_per_s"].to_numpy(), "--", color=GREY, label="ideal")
    style(right, "throughput", "N (containers)", "containers per second")
    for ax in (left, right):
        if n.max() / max(n.min(), 1) >= 20:
            ax.set_xscale("log")
        ax.legend(fontsize=8, frameon=False)
    return svg(fig)


def scale_page(df: pd.DataFrame, verification: Verification, plot: bytes,
               facts: list[tuple[str, Any]]) -> str:
    """A small self-contained HTML page: what ran, the table, the plot and the verdict."""
    from launcher.html import facts_table, html_table, img, note, page, verdict

    ideal = note("ideal: the measured container times of each size, perfectly packed on "
                 "its slots; efficiency = ideal / wall time (at most 1)")
    body = (f"<h1>Scaling: {facts[0][1]}</h1>{facts_table(facts)}{html_table(df, 50)}"
            f"{img(plot, 'wall time and throughput against N')}{ideal}"
            f"{verdict(verification)}")
    return page("scale", body)
