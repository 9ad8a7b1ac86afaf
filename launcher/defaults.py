"""Every default of a sweep's settings, in one place (the README's table says the same)."""

from __future__ import annotations

RESULTS_ROOT = "results"
REPLICAS = 1
SEED = 0
SEED_MODE = "distinct"
NETWORK = "none"
CPUS = 1.0
MEMORY = 2 * 1024**3
PIDS = 512
GPUS = 0
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a trial is stopped
LOG_LIMIT = 2 * 1024 * 1024  # bytes of a trial's log kept (head and tail)
OUTPUTS_LIMIT = 256 * 1024 * 1024  # bytes of /outputs copied back per trial
TMP_SIZE = "256m"  # the tmpfs at /tmp of a trial
