"""Open files: what a run over many hosts needs, checked before any container starts.

Every host holds a connection pool (a socket per concurrent call, up to its slots plus
a few), every running trial may spool its outputs to a file, and the run directory,
the interpreter and the libraries hold some more. At the default soft limit of 1,024
open files, 50 local hosts of 8 slots already crash a run mid-way ("Too many open
files"). So the soft limit is raised to the hard limit when a run starts, and the need
is checked against it: a run that cannot fit is refused with one line that says what
to change, before any container starts.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable

from launcher.errors import ResourceError

BASE_FILES = 64  # interpreter, libraries, run directory, logs, lock, the odd temp file
PER_HOST = 1  # beyond its slots: a ping, teardown or stop call in flight


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some containers forbid it: keep what we have
            pass
    return int(soft)


def files_needed(slots: Iterable[int], *, concurrent_trials: int = 0,
                 outputs: bool = False, live_lines: bool = False) -> int:
    """Open files a run needs: every host's pool (its slots plus PER_HOST; two
    connections per slot when trials' lines are followed live, for early termination),
    and a spool file per running trial when outputs are copied back."""
    per_slot = 2 if live_lines else 1
    return BASE_FILES + sum(per_slot * s + PER_HOST for s in slots) + (
        concurrent_trials if outputs else 0)


def check_open_files(needed: int, what: str) -> None:
    """Raise the limit if it can be raised; refuse the run when ``needed`` exceeds it."""
    limit = raise_open_files_limit()
    if needed > limit:
        raise ResourceError(f"{what} needs about {needed} open files, but this process may "
                            f"open only {limit}", needed=needed, limit=limit,
                            hint="raise the limit (ulimit -n), or use fewer hosts or slots "
                            "(hosts[].slots, max_parallel)")
