#!/usr/bin/env bash
# W&B's open-source sweep engine (the `sweeps` package, 0.2.0) in a venv of its own, for the
# differential test (tests/wandb/). It needs old pins (pydantic<2, numpy<2) that must not
# touch the project's venv. Idempotent: a venv that already imports `sweeps` is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/wandb-sweeps
PYTHON="${PYTHON:-python3.11}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sweeps" 2>/dev/null; then
    exit 0
fi
echo "creating $VENV with W&B's sweeps engine (once)..." >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    "sweeps==0.2.0" "pydantic<2" "numpy<2" "scipy<1.14" >/dev/null 2>&1 \
    || "$VENV/bin/pip" install -q --disable-pip-version-check \
        "sweeps==0.2.0" "pydantic<2" "numpy<2" scipy
"$VENV/bin/python" -c "import sweeps, scipy.stats"
