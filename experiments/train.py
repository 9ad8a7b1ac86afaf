"""Train a small MLP classifier on 3-class spirals: the job that runs inside the image.

This script is the image side of the image <-> launcher contract. It uses only the
standard library and numpy, and never imports ``launcher``.

Inputs
    argv        hyperparameters as ``--name=value`` (``--name value`` works too):
                  --lr FLOAT          SGD learning rate (default 0.3)
                  --batch_size INT    mini-batch size (default 32)
                  --hidden INT        hidden units (default 32)
                  --epochs INT        passes over the training set (default 400)
                  --seed INT          model init and shuffling seed (see below)
                  --l2 FLOAT          L2 penalty on the weight matrices (default 1e-4)
                  --samples INT       dataset size, train + validation (default 2000)
                  --momentum FLOAT    SGD momentum in [0, 1) (default 0.0)
                  --noise FLOAT       angular noise of the spirals, radians (default 0.3)
                  --val_fraction F    share of samples held out for validation (default 0.25)
                  --data_seed INT     seed of the generated dataset (default 0)
                  --unseeded BOOL     ignore the seed and initialize from OS entropy
                                      (default false; used to show that ``verify`` catches
                                      non-reproducible jobs)
                  --outputs DIR       output directory (see below)
                Multi-word names also accept dashes (``--batch-size``). Booleans accept
                True/False/true/false/1/0 (W&B style); ``--unseeded`` alone means true.
                Integers accept an integral float spelling such as ``32.0``.
    env         LAUNCH_SEED      seed used when ``--seed`` is absent (else 0)
                LAUNCH_OUTPUTS   output directory when ``--outputs`` is absent (else /outputs)
                LAUNCH_TRIAL_ID  informational, echoed on stderr
                LAUNCH_PARAMS    JSON of the trial's parameters, informational only

Outputs
    stdout      one JSON line per epoch:
                  {"epoch": 1, "train_loss": f, "train_acc": f, "val_loss": f, "val_acc": f}
                then a final line {"metrics": {...}} with the keys
                  train_acc, train_loss, val_acc, val_loss   (after the last epoch)
                  best_val_acc, n_params, weights_sha256    (sha256 of model.npy, 16 hex)
                Losses are the mean cross-entropy without the L2 term.
    files       <outputs>/metrics.json  the same metrics dict (sorted keys, one line)
                <outputs>/model.npy     all weights as one little-endian float64 vector,
                                        in the order W1 (2 x hidden, row-major), b1 (hidden),
                                        W2 (hidden x 3, row-major), b2 (3)
                Same seed + same parameters give bit-identical metrics and files on the same
                image and CPU family: float64 throughout, one dedicated numpy Generator, no
                global RNG state, no timings or hostnames in any output. BLAS is pinned to one
                thread (unless the caller sets the *_NUM_THREADS variables). Caveat: OpenBLAS
                and numpy pick SIMD kernels per CPU, so hosts with different instruction sets
                (e.g. AVX-512 vs AVX2 only) can differ in the last bits; setting
                OPENBLAS_CORETYPE and NPY_DISABLE_CPU_FEATURES in the image pins the kernels.
    stderr      free-form progress (trial id, seed, wall time); the reason of any failure on
                one line, never a traceback.
    exit code   0 success; 1 training failed (e.g. the loss became NaN/inf because the learning
                rate is too large) or the outputs could not be written; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

# One BLAS thread: deterministic summation order and no oversubscription when many
# containers share a host. Must happen before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

Floats = NDArray[np.float64]
Labels = NDArray[np.int64]
Record = dict[str, float | int]

PROG = "train.py"
N_CLASSES = 3
N_FEATURES = 2
SPIRAL_TURNS = 1.0
DEFAULT_OUTPUTS = "/outputs"


class TrainingError(Exception):
    """Training cannot produce a valid model (e.g. the loss diverged)."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single stderr line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Config:
    lr: float
    batch_size: int
    hidden: int
    epochs: int
    seed: int | None  # None: OS entropy (--unseeded)
    l2: float
    samples: int
    momentum: float
    noise: float
    val_fraction: float
    data_seed: int
    outputs: Path


@dataclass
class Model:
    w1: Floats
    b1: Floats
    w2: Floats
    b2: Floats

    def arrays(self) -> list[Floats]:
        return [self.w1, self.b1, self.w2, self.b2]

    def flat(self) -> Floats:
        return np.concatenate([a.ravel() for a in self.arrays()]).astype("<f8")


@dataclass(frozen=True)
class Split:
    x_train: Floats
    y_train: Labels
    x_val: Floats
    y_val: Labels


# ----------------------------------------------------------------------------- arguments


def parse_bool(text: str) -> bool:
    """W&B-style boolean: True/False/true/false/1/0 (and yes/no)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false/1/0, got {text!r}")


def parse_int(text: str) -> int:
    """An integer; an integral float spelling (``32.0``) is accepted too."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def parse_float(text: str) -> float:
    """A finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, allow_abbrev=False, description=(__doc__ or "").partition("\n")[0])
    p.add_argument("--lr", type=parse_float, default=0.3)
    p.add_argument("--batch_size", "--batch-size", type=parse_int, default=32)
    p.add_argument("--hidden", type=parse_int, default=32)
    p.add_argument("--epochs", type=parse_int, default=400)
    p.add_argument("--seed", type=parse_int, default=None)
    p.add_argument("--l2", type=parse_float, default=1e-4)
    p.add_argument("--samples", type=parse_int, default=2000)
    p.add_argument("--momentum", type=parse_float, default=0.0)
    p.add_argument("--noise", type=parse_float, default=0.3)
    p.add_argument("--val_fraction", "--val-fraction", type=parse_float, default=0.25)
    p.add_argument("--data_seed", "--data-seed", type=parse_int, default=0)
    p.add_argument("--unseeded", type=parse_bool, nargs="?", const=True, default=False)
    p.add_argument("--outputs", default=None)
    return p


def check_ranges(p: OneLineParser, a: argparse.Namespace) -> None:
    """Reject values that parse but make no sense, as usage errors (exit 2)."""
    checks = [
        (a.lr > 0, "--lr must be > 0"),
        (a.batch_size >= 1, "--batch_size must be >= 1"),
        (a.hidden >= 1, "--hidden must be >= 1"),
        (a.epochs >= 1, "--epochs must be >= 1"),
        (a.seed is None or a.seed >= 0, "--seed must be >= 0"),
        (a.l2 >= 0, "--l2 must be >= 0"),
        (a.samples >= 10 * N_CLASSES, f"--samples must be >= {10 * N_CLASSES}"),
        (0 <= a.momentum < 1, "--momentum must be in [0, 1)"),
        (a.noise >= 0, "--noise must be >= 0"),
        (0.05 <= a.val_fraction <= 0.5, "--val_fraction must be in [0.05, 0.5]"),
        (a.data_seed >= 0, "--data_seed must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            p.error(message)


def seed_from_env(p: OneLineParser) -> int:
    """LAUNCH_SEED if set (must be a non-negative integer), else 0."""
    raw = os.environ.get("LAUNCH_SEED", "").strip()
    if not raw:
        return 0
    try:
        seed = int(raw)
    except ValueError:
        p.error(f"LAUNCH_SEED must be an integer, got {raw!r}")
    if seed < 0:
        p.error(f"LAUNCH_SEED must be >= 0, got {seed}")
    return seed


def parse_config(argv: list[str]) -> Config:
    p = build_parser()
    a = p.parse_args(argv)
    check_ranges(p, a)
    seed = a.seed if a.seed is not None else seed_from_env(p)
    outputs = a.outputs or os.environ.get("LAUNCH_OUTPUTS") or DEFAULT_OUTPUTS
    return Config(
        lr=a.lr,
        batch_size=a.batch_size,
        hidden=a.hidden,
        epochs=a.epochs,
        seed=None if a.unseeded else seed,
        l2=a.l2,
        samples=a.samples,
        momentum=a.momentum,
        noise=a.noise,
        val_fraction=a.val_fraction,
        data_seed=a.data_seed,
        outputs=Path(outputs),
    )


# ----------------------------------------------------------------------------- data


def make_spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[Floats, Labels]:
    """n points on N_CLASSES interleaved spiral arms with angular noise; labels 0..K-1."""
    xs: list[Floats] = []
    ys: list[Labels] = []
    for k in range(N_CLASSES):
        m = n // N_CLASSES + (1 if k < n % N_CLASSES else 0)
        radius = np.linspace(0.05, 1.0, m)
        theta = 2 * np.pi * (k / N_CLASSES + SPIRAL_TURNS * radius) + rng.normal(0.0, noise, m)
        xs.append(np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]))
        ys.append(np.full(m, k, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def make_split(cfg: Config) -> Split:
    """The dataset depends only on samples, noise, val_fraction and data_seed."""
    rng = np.random.default_rng(cfg.data_seed)
    x, y = make_spirals(cfg.samples, cfg.noise, rng)
    order = rng.permutation(len(y))
    n_val = round(cfg.samples * cfg.val_fraction)
    val, train = order[:n_val], order[n_val:]
    return Split(x[train], y[train], x[val], y[val])


# ----------------------------------------------------------------------------- model


def init_model(hidden: int, rng: np.random.Generator) -> Model:
    """He-normal first layer (ReLU), random first-layer biases so units cut the data region."""
    return Model(
        w1=rng.normal(0.0, math.sqrt(2.0 / N_FEATURES), (N_FEATURES, hidden)),
        b1=rng.uniform(-1.0, 1.0, hidden),
        w2=rng.normal(0.0, math.sqrt(1.0 / hidden), (hidden, N_CLASSES)),
        b2=np.zeros(N_CLASSES),
    )


def log_softmax(z: Floats) -> Floats:
    shifted: Floats = z - z.max(axis=1, keepdims=True)
    log_norm: Floats = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted - log_norm


def forward(m: Model, x: Floats) -> tuple[Floats, Floats]:
    """Hidden pre-activations and class log-probabilities."""
    pre = x @ m.w1 + m.b1
    logits = np.maximum(pre, 0.0) @ m.w2 + m.b2
    return pre, log_softmax(logits)


def gradients(m: Model, x: Floats, y: Labels, l2: float) -> list[Floats]:
    """Gradients of mean cross-entropy + l2/2 * |W|^2, in Model.arrays() order."""
    pre, logp = forward(m, x)
    h = np.maximum(pre, 0.0)
    dz = np.exp(logp)
    dz[np.arange(len(y)), y] -= 1.0
    dz /= len(y)
    dh = (dz @ m.w2.T) * (pre > 0.0)
    return [x.T @ dh + l2 * m.w1, dh.sum(axis=0), h.T @ dz + l2 * m.w2, dz.sum(axis=0)]


def evaluate(m: Model, x: Floats, y: Labels) -> tuple[float, float]:
    """Mean cross-entropy and accuracy."""
    _, logp = forward(m, x)
    loss = float(-logp[np.arange(len(y)), y].mean())
    acc = float((logp.argmax(axis=1) == y).mean())
    return loss, acc


def run_epoch(
    m: Model, velocity: list[Floats], data: Split, cfg: Config, rng: np.random.Generator
) -> None:
    """One shuffled pass of mini-batch SGD (with optional momentum), in place."""
    order = rng.permutation(len(data.y_train))
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        grads = gradients(m, data.x_train[idx], data.y_train[idx], cfg.l2)
        for param, vel, grad in zip(m.arrays(), velocity, grads, strict=True):
            vel *= cfg.momentum
            vel -= cfg.lr * grad
            param += vel


def epoch_record(epoch: int, m: Model, data: Split) -> Record:
    train_loss, train_acc = evaluate(m, data.x_train, data.y_train)
    val_loss, val_acc = evaluate(m, data.x_val, data.y_val)
    losses = (train_loss, val_loss)
    if not all(math.isfinite(v) for v in losses) or not np.isfinite(m.flat()).all():
        raise TrainingError(f"loss became non-finite at epoch {epoch} (learning rate too large?)")
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
    }


def train(cfg: Config, data: Split) -> tuple[Model, list[Record]]:
    """Train and print one JSON history line per epoch; returns the model and the history."""
    rng = np.random.default_rng(cfg.seed)  # seed None -> OS entropy
    m = init_model(cfg.hidden, rng)
    velocity = [np.zeros_like(a) for a in m.arrays()]
    history: list[Record] = []
    with np.errstate(all="ignore"):  # divergence is reported by epoch_record, not warnings
        for epoch in range(1, cfg.epochs + 1):
            run_epoch(m, velocity, data, cfg, rng)
            history.append(epoch_record(epoch, m, data))
            print(json.dumps(history[-1]), flush=True)
    return m, history


# ----------------------------------------------------------------------------- outputs


def model_bytes(m: Model) -> bytes:
    """The .npy encoding of the flat weights: no timestamps, so bytes depend on values only."""
    buf = io.BytesIO()
    np.save(buf, m.flat(), allow_pickle=False)
    return buf.getvalue()


def write_outputs(cfg: Config, m: Model, history: list[Record]) -> dict[str, object]:
    blob = model_bytes(m)
    last = history[-1]
    metrics: dict[str, object] = {
        "train_acc": last["train_acc"],
        "train_loss": last["train_loss"],
        "val_acc": last["val_acc"],
        "val_loss": last["val_loss"],
        "best_val_acc": max(float(h["val_acc"]) for h in history),
        "n_params": int(m.flat().size),
        "weights_sha256": hashlib.sha256(blob).hexdigest()[:16],
    }
    cfg.outputs.mkdir(parents=True, exist_ok=True)
    (cfg.outputs / "model.npy").write_bytes(blob)
    (cfg.outputs / "metrics.json").write_text(json.dumps(metrics, sort_keys=True) + "\n")
    return metrics


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(sys.argv[1:] if argv is None else argv)
    trial = os.environ.get("LAUNCH_TRIAL_ID", "-")
    seed = "OS entropy (--unseeded)" if cfg.seed is None else str(cfg.seed)
    print(f"{PROG}: trial {trial}, seed {seed}, outputs {cfg.outputs}", file=sys.stderr)
    started = time.perf_counter()
    try:
        cfg.outputs.mkdir(parents=True, exist_ok=True)
        model, history = train(cfg, make_split(cfg))
        metrics = write_outputs(cfg, model, history)
    except TrainingError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write outputs to {cfg.outputs}: {e.strerror or e}")
    print(json.dumps({"metrics": metrics}, sort_keys=True), flush=True)
    elapsed = time.perf_counter() - started
    print(f"{PROG}: {cfg.epochs} epochs in {elapsed:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
