"""``launch logs -f``: stream a running trial's log straight from its container.

It says what it waits for, finds the trial's container through started.jsonl (the host
and container the run created), and stops waiting as soon as the run is no longer
running: a trial of a stopped run will not start by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from launcher.errors import HostError
from launcher.store import RunDir, RunState, StartedEntry

POLL_SECONDS = 1.0
MAX_WAIT_SECONDS = 3600  # bounded: following gives up after an hour without the trial

Say = Callable[[str], None]


def follow_log(run: RunDir, trial_id: str, out: TextIO, say: Say) -> str:
    """Stream the log of ``trial_id`` while its container runs. Returns "streamed" (the
    container ran to its end), "recorded" (the trial finished: its log file is there) or
    the run's state when the run is not running and the trial never started."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    waiting_said = False
    while time.monotonic() < deadline:
        if run.has_record(trial_id):
            return "recorded"
        state = run.state()
        if state is not RunState.RUNNING:
            return str(state)
        entry = _running_entry(run, trial_id)
        if entry is not None:
            say(f"following trial {trial_id} in container {entry.container_id[:12]} on "
                f"{entry.host} (started {entry.at})")
            if _stream(run, entry, out):
                return "streamed"
        elif not waiting_said:
            say(f"waiting for trial {trial_id} to start: run {run.label} is running and has "
                f"not started it yet (Ctrl-C stops waiting)")
            waiting_said = True
        time.sleep(POLL_SECONDS)
    say(f"gave up after {MAX_WAIT_SECONDS} s: trial {trial_id} did not start")
    return "timeout"


def _running_entry(run: RunDir, trial_id: str) -> StartedEntry | None:
    found = [e for e in run.running() if e.trial_id == trial_id]
    return found[-1] if found else None


def _stream(run: RunDir, entry: StartedEntry, out: TextIO) -> bool:
    """Copy the container's log as it grows; False when the host or container is gone."""
    import docker.errors

    from launcher.hosts import connect

    spec = next((h for h in run.manifest().host_specs() if h.name == entry.host), None)
    if spec is None:
        return False
    try:
        host = connect(spec)
    except HostError:
        return False
    try:
        for chunk in host.client.api.logs(entry.container_id, stream=True, follow=True):
            out.write(chunk.decode("utf-8", "replace"))
            out.flush()
        return True
    except docker.errors.NotFound:
        return False
    finally:
        host.close()
