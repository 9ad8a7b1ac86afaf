"""The launcher's errors: one root, a few subclasses that carry data.

Everything the launcher raises on purpose is a :class:`LauncherError`. The command
line turns it into one line and an exit code in exactly one place (``cli.main``);
library users catch ``LauncherError`` and read its fields.

Exit codes: 2 for anything wrong in the command line or sweep file found before a
container starts (:class:`SweepError`, :class:`UsageError`), 1 for runtime errors,
130 for an interrupted run.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LauncherError(Exception):
    """Root of every error the launcher raises on purpose."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(LauncherError):
    """A bad command-line value (an option, a ``--set`` path, a run that does not exist)."""

    exit_code = EXIT_USAGE


class SweepError(LauncherError):
    """A sweep file that cannot be read, or says something invalid.

    ``path`` and ``line`` point at the offending place when it is known; ``key`` is the
    dotted key path inside the file (``parameters.lr.min``).
    """

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = self.path or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        prefix = f"{where}: " if where else ""
        redundant = not self.key or self.key in self.message or self.key in where
        key = "" if redundant else f"{self.key}: "
        return f"{prefix}{key}{super().__str__()}"


class ImageError(LauncherError):
    """The training image could not be built, found or shipped.

    ``build_log`` holds the whole build output when a build failed.
    """

    def __init__(self, message: str, *, build_log: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.build_log = build_log


class HostError(LauncherError):
    """A Docker host (or Ray node) is unreachable, refused us, or is not usable."""

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host

    def __str__(self) -> str:
        return f"host {self.host}: {super().__str__()}"


class ResourceError(LauncherError):
    """This machine cannot give the run what it needs (open files), found before any
    container starts. ``needed`` and ``limit`` are counts of the resource."""

    def __init__(self, message: str, *, needed: int, limit: int,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.needed = needed
        self.limit = limit


class RunError(LauncherError):
    """A run directory is missing, locked by another launcher, or inconsistent."""

    def __init__(self, message: str, *, run: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.run = run


class RunChanged(RunError):
    """A run's own sweep file or plan changed since it started: resuming it would run
    trials differently from the others, so it is refused before any container."""

    exit_code = EXIT_USAGE


class UnknownRun(RunError):
    """The command line names a run that does not exist, or more than one."""

    exit_code = EXIT_USAGE
