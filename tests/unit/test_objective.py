"""experiments/objective.py: the known test functions at their optima, a learning curve
per step that ends on the exact value, the contract's outputs and clean usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

OBJECTIVE = Path(__file__).resolve().parents[2] / "experiments" / "objective.py"
BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237
HARTMANN6_ARGMIN = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)


def run(tmp_path: Path, *args: str, seed: str = "0") -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run([sys.executable, str(OBJECTIVE), f"--outputs={tmp_path}", *args],
                          capture_output=True, text=True, timeout=60,
                          env={"LAUNCH_SEED": seed, "PATH": "/usr/bin:/bin"})
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr


@pytest.mark.parametrize(("args", "minimum"), [
    (("--x1=3.14159265", "--x2=2.275"), BRANIN_MIN),
    (("--x1=-3.14159265", "--x2=12.275"), BRANIN_MIN),
    (("--function=hartmann6", *(f"--x{i + 1}={v}" for i, v in enumerate(HARTMANN6_ARGMIN))),
     HARTMANN6_MIN),
])
def test_known_optima(tmp_path: Path, args: tuple[str, ...], minimum: float) -> None:
    code, lines, _ = run(tmp_path, *args)
    assert code == 0
    assert lines[-1]["metrics"]["value"] == pytest.approx(minimum, abs=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text()) == lines[-1]["metrics"]


def test_the_curve_has_one_line_per_step_and_ends_on_the_exact_value(tmp_path: Path) -> None:
    code, lines, _ = run(tmp_path, "--x1=0", "--x2=0", "--steps=7", "--metric=loss")
    history, final = lines[:-1], lines[-1]["metrics"]
    assert code == 0 and [h["step"] for h in history] == list(range(1, 8))
    assert history[-1]["loss"] == final["loss"]
    assert history[0]["loss"] > final["loss"] + 20  # it learns: far above at first
    _, again, _ = run(tmp_path, "--x1=0", "--x2=0", "--steps=7", "--metric=loss")
    _, other_seed, _ = run(tmp_path, "--x1=0", "--x2=0", "--steps=7", "--metric=loss",
                           seed="5")
    assert again == lines and other_seed[0] != lines[0] and other_seed[-1] == lines[-1]


def test_any_takes_every_parameter_and_epochs_as_steps(tmp_path: Path) -> None:
    code, lines, _ = run(tmp_path, "--function=any", "--metric=val_loss", "--epochs=4",
                         "--dropout=0.2", "--optimizer", "adam")
    value = lines[-1]["metrics"]["val_loss"]
    assert code == 0 and len(lines) == 5 and 0 <= value <= 1
    _, other, _ = run(tmp_path, "--function=any", "--metric=val_loss", "--epochs=4",
                      "--dropout=0.3", "--optimizer", "adam")
    assert other[-1]["metrics"]["val_loss"] != value


@pytest.mark.parametrize(("args", "words"), [
    (("--lr=3",), "unknown argument --lr"),
    (("--function=rosenbrock",), "--function must be"),
    (("--x1=abc",), "--x1 must be a number"),
    (("--steps=0",), "--steps must be >= 1"),
    (("x1=3",), "unexpected argument"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                               words: str) -> None:
    code, _, stderr = run(tmp_path, *args)
    assert code == 2 and words in stderr and stderr.count("\n") == 1
