"""A training job that follows the launcher's contract: a random forest on scikit-learn's
bundled handwritten digits (no download), seeded, so equal seeds give equal results.

Replace the model and the data with your own; keep the contract:

In   hyperparameters as ``--name=value`` argv items (one per sweep parameter); the seed
     in the ``LAUNCH_SEED`` environment variable (the trial id in ``LAUNCH_TRIAL_ID``, all
     parameters as JSON in ``LAUNCH_PARAMS``).
Out  one JSON line per step on stdout, with a ``step`` (or ``epoch``) key: the learning
     curve; a final stdout line ``{"metrics": {...}}`` holding the sweep's ``metric.name``;
     the same metrics in /outputs/metrics.json; any other file written to /outputs (here
     model.pkl) is copied back into the run folder. Exit code 0 means success.
     Report only values that depend on the seed and the parameters (no timings), so that
     `launch verify` can show that a seed gives the same result everywhere.

Run it by hand with ``python3 train.py --n_estimators=50`` (outputs go to ./outputs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a random forest on digits.")
    parser.add_argument("--n_estimators", type=int, default=60, help="trees in the forest")
    parser.add_argument("--max_depth", type=int, default=8, help="depth of each tree")
    parser.add_argument("--max_features", default="sqrt", help="features per split")
    parser.add_argument("--step", type=int, default=10, help="trees added per history line")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("LAUNCH_SEED", "0")))
    return parser.parse_args()


def outputs_dir() -> Path:
    """/outputs in the container (the launcher copies it back); ./outputs elsewhere."""
    folder = Path("/outputs") if Path("/outputs").is_dir() else Path("outputs")
    folder.mkdir(exist_ok=True)
    return folder


def main() -> int:
    args = parse_args()
    features, labels = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        features, labels, test_size=0.25, random_state=args.seed, stratify=labels)
    # warm_start grows the same forest step by step: one history line per step.
    model = RandomForestClassifier(n_estimators=0, max_depth=args.max_depth,
                                   max_features=args.max_features, warm_start=True,
                                   n_jobs=1, random_state=args.seed)
    trees = 0
    while trees < args.n_estimators:
        trees = min(trees + args.step, args.n_estimators)
        model.set_params(n_estimators=trees)
        model.fit(x_train, y_train)
        val_acc = accuracy_score(y_val, model.predict(x_val))
        print(json.dumps({"step": trees, "val_acc": round(float(val_acc), 6)}), flush=True)
    model_bytes = pickle.dumps(model, protocol=4)
    metrics = {
        "val_acc": float(accuracy_score(y_val, model.predict(x_val))),
        "train_acc": float(accuracy_score(y_train, model.predict(x_train))),
        "val_loss": float(log_loss(y_val, model.predict_proba(x_val), labels=model.classes_)),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest()[:16],
    }
    out = outputs_dir()
    (out / "model.pkl").write_bytes(model_bytes)
    (out / "metrics.json").write_text(json.dumps(metrics, sort_keys=True) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
