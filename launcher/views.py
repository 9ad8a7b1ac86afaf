"""Terminal renderings of core objects (plans, summaries). No click here."""

from __future__ import annotations

import json
from typing import TextIO

from launcher.plan import Plan
from launcher.spec import SweepSpec
from launcher.tables import write_rows


def print_plan(spec: SweepSpec, plan: Plan, fmt: str, out: TextIO) -> None:
    """The trials as a table, CSV or JSON; a count line after the table."""
    if fmt == "json":
        json.dump(plan.to_json(), out, indent=1, ensure_ascii=False)
        out.write("\n")
        return
    names = plan.parameter_names
    columns = ["trial_id", "config_id", "replica", "seed", *(f"param.{n}" for n in names)]
    rows = ([t.trial_id, t.config_id, t.replica, t.seed, *(v for _, v in t.params)]
            for t in plan.trials)
    write_rows(out, columns, rows, fmt)
    if fmt == "table":
        out.write(f"\n{len(plan.trials)} trials: {plan.configurations} configurations x "
                  f"{spec.replicas} replicas ({spec.method}, seed_mode {spec.seed_mode}, "
                  f"sweep {spec.name})\n")
        for note in plan.notes:
            out.write(f"note: {note}\n")
