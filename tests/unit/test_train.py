"""experiments/train.py keeps the image side of the contract: reproducible, JSON out, clean errors.

The script is run as a subprocess (as the image's entrypoint would be), with small sizes so
the whole file stays around a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TRAIN = Path(__file__).resolve().parents[2] / "experiments" / "train.py"
SMALL = ["--epochs=5", "--samples=300"]


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    outputs: Path

    @property
    def lines(self) -> list[str]:
        return self.proc.stdout.splitlines()

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.outputs / "metrics.json").read_text())  # type: ignore[no-any-return]

    @property
    def model(self) -> bytes:
        return (self.outputs / "model.npy").read_bytes()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCH_")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def run_train(outputs: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run train.py; outputs go to `outputs` via --outputs unless env sets LAUNCH_OUTPUTS."""
    env = clean_env() if env is None else env
    argv = list(args) if "LAUNCH_OUTPUTS" in env else [*args, f"--outputs={outputs}"]
    proc = subprocess.run(
        [sys.executable, str(TRAIN), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return Run(proc, outputs)


def ok(run: Run) -> Run:
    assert run.proc.returncode == 0, run.proc.stderr
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The runs shared by the reproducibility tests (each script run costs ~0.1 s)."""
    d = tmp_path_factory.mktemp("train")
    return {
        # --seed wins over LAUNCH_SEED
        "seed3": ok(run_train(d / "a", *SMALL, "--seed=3", env=clean_env(LAUNCH_SEED="99"))),
        # same job spelled the other way: "--name value", dashed name, W&B boolean
        "seed3_again": ok(
            run_train(
                d / "b",
                "--epochs",
                "5",
                "--samples",
                "300",
                "--seed",
                "3",
                "--batch-size",
                "32",
                "--unseeded=False",
            ),
        ),
        # no --seed: LAUNCH_SEED is used; no --outputs: LAUNCH_OUTPUTS is used (and created)
        "env_seed3": ok(
            run_train(
                d / "c" / "nested",
                *SMALL,
                env=clean_env(LAUNCH_SEED="3", LAUNCH_OUTPUTS=str(d / "c" / "nested")),
            ),
        ),
        "seed4": ok(run_train(d / "d", *SMALL, "--seed=4")),
        "unseeded1": ok(run_train(d / "e", *SMALL, "--seed=3", "--unseeded=true")),
        "unseeded2": ok(run_train(d / "f", *SMALL, "--seed=3", "--unseeded=True")),
    }


def test_same_seed_gives_identical_metrics_and_model_bytes(runs: dict[str, Run]) -> None:
    a, b = runs["seed3"], runs["seed3_again"]
    assert a.metrics == b.metrics
    assert a.model == b.model
    assert a.proc.stdout == b.proc.stdout


def test_launch_seed_env_is_used_without_seed_flag(runs: dict[str, Run]) -> None:
    assert runs["env_seed3"].model == runs["seed3"].model
    assert runs["env_seed3"].metrics == runs["seed3"].metrics


def test_different_seed_gives_different_weights(runs: dict[str, Run]) -> None:
    assert runs["seed4"].model != runs["seed3"].model
    assert runs["seed4"].metrics["weights_sha256"] != runs["seed3"].metrics["weights_sha256"]


def test_unseeded_runs_differ_from_each_other_and_from_the_seed(runs: dict[str, Run]) -> None:
    first, second = runs["unseeded1"].model, runs["unseeded2"].model
    assert first != second
    assert runs["seed3"].model not in (first, second)


def test_history_is_json_per_epoch_and_last_line_is_metrics_json(runs: dict[str, Run]) -> None:
    run = runs["seed3"]
    *history, last = [json.loads(line) for line in run.lines]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    for h in history:
        assert set(h) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
        assert 0.0 <= h["val_acc"] <= 1.0 and h["val_loss"] > 0
    assert last == {"metrics": run.metrics}
    assert run.metrics["val_acc"] == history[-1]["val_acc"]
    assert run.metrics["train_loss"] == history[-1]["train_loss"]


def test_metrics_hash_names_the_model_file(runs: dict[str, Run]) -> None:
    run = runs["seed3"]
    assert run.metrics["weights_sha256"] == hashlib.sha256(run.model).hexdigest()[:16]
    assert set(run.metrics) == {
        "train_acc",
        "train_loss",
        "val_acc",
        "val_loss",
        "best_val_acc",
        "n_params",
        "weights_sha256",
    }
    assert sorted(p.name for p in run.outputs.iterdir()) == ["metrics.json", "model.npy"]


@pytest.mark.parametrize(
    "bad",
    ["--bogus=1", "--lr=abc", "--epochs=0", "--unseeded=maybe", "--lr=nan", "--hidden=2.5"],
)
def test_bad_argument_exits_2_with_one_line(tmp_path: Path, bad: str) -> None:
    run = run_train(tmp_path / "out", *SMALL, bad)
    assert run.proc.returncode == 2
    assert run.proc.stdout == ""
    assert "Traceback" not in run.proc.stderr
    assert len(run.proc.stderr.strip().splitlines()) == 1
    assert "error" in run.proc.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_diverging_learning_rate_fails_with_one_line_reason(tmp_path: Path) -> None:
    run = run_train(tmp_path, "--epochs=3", "--samples=300", "--lr=1e12")
    assert run.proc.returncode == 1
    assert "Traceback" not in run.proc.stderr
    errors = [line for line in run.proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "non-finite" in errors[0]
    assert not (tmp_path / "metrics.json").exists()


def test_learning_rate_visibly_changes_quality(tmp_path: Path) -> None:
    base = ["--samples=600", "--epochs=100", "--seed=0"]
    slow = ok(run_train(tmp_path / "slow", *base, "--lr=0.01")).metrics
    fast = ok(run_train(tmp_path / "fast", *base, "--lr=0.3")).metrics
    assert fast["val_acc"] > slow["val_acc"] + 0.2
    assert fast["val_loss"] < slow["val_loss"] - 0.2


def test_hidden_width_visibly_changes_quality(tmp_path: Path) -> None:
    base = ["--samples=600", "--epochs=100", "--seed=1"]
    narrow = ok(run_train(tmp_path / "narrow", *base, "--hidden=4")).metrics
    wide = ok(run_train(tmp_path / "wide", *base, "--hidden=64")).metrics
    assert wide["val_acc"] > narrow["val_acc"] + 0.2
    assert wide["n_params"] > narrow["n_params"]
