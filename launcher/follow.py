"""``launch logs -f``: stream a running trial's log straight from its container."""

from __future__ import annotations

import time
from typing import TextIO

from launcher.errors import HostError
from launcher.store import RunDir
from launcher.trial import LABEL_RUN, LABEL_TRIAL

POLL_SECONDS = 1.0
MAX_WAIT_SECONDS = 3600  # bounded: following gives up after an hour without the trial


def follow_log(run: RunDir, trial_id: str, out: TextIO) -> bool:
    """Stream the log of ``trial_id`` while its container runs; True if one was found.

    Waits (bounded) for the container to appear when the trial is still queued, and
    stops waiting as soon as the trial is recorded.
    """
    from launcher.hosts import connect

    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while time.monotonic() < deadline:
        if run.has_record(trial_id):
            return False
        for spec in run.manifest().host_specs():
            try:
                host = connect(spec)
            except HostError:
                continue
            try:
                api = host.client.api
                found = api.containers(filters={"label": [f"{LABEL_RUN}={run.run_id}",
                                                          f"{LABEL_TRIAL}={trial_id}"]})
                if found:
                    for chunk in api.logs(found[0]["Id"], stream=True, follow=True):
                        out.write(chunk.decode("utf-8", "replace"))
                        out.flush()
                    return True
            finally:
                host.close()
        time.sleep(POLL_SECONDS)
    return False
