"""Everything a run needs before its first trial: the backend, the image, the settings.

:class:`prepared_backend` connects the backend's workers (the backend builds itself
from the sweep), builds the image once on the backend's build engine, sets the backend
up and tears it down again on exit, also after a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from launcher.backends.base import Backend, RunContext
from launcher.container import ContainerSettings
from launcher.errors import SweepError
from launcher.image import BuiltImage
from launcher.interrupts import Interrupts
from launcher.safety import check_effective_user
from launcher.spec import SweepSpec
from launcher.store import ImageRecord

if TYPE_CHECKING:
    from launcher.hosts import Host

LineSink = Callable[[str], None]


class prepared_backend:
    """Connect, build the image once, set the backend up; tear it down on exit.

    For a resumed run, ``image`` is the run's image (see launcher.same_image) and hosts
    that do not answer are left out (a dead host must not block a resume). ``notes``
    collects what the summary should say. A first signal during the teardown is only
    noted (``signals``)."""

    def __init__(self, spec: SweepSpec, run_id: str, on_line: LineSink | None, *,
                 signals: Interrupts | None = None, image: ImageRecord | None = None) -> None:
        self.spec, self.run_id, self.on_line = spec, run_id, on_line
        self.signals = signals or Interrupts()
        self.expected = image
        self.backend: Backend | None = None
        self.notes: list[str] = []

    def __enter__(self) -> tuple[Backend, BuiltImage, RunContext]:
        try:
            return self._prepare()
        except BaseException:  # a failed build or setup must not leak connections
            self.__exit__()
            raise

    def _prepare(self) -> tuple[Backend, BuiltImage, RunContext]:
        from launcher.backends import get_backend

        spec = self.spec
        macro_env, trial_env = resolve_environment(spec)
        # a resume leaves out the hosts that do not answer: a dead host must not block it
        self.backend = backend = get_backend(
            spec if self.expected is None else replace(spec, skip_unreachable=True))
        image = self._image(backend)
        settings = container_settings(spec, image, self.run_id, trial_env)
        check_effective_user(settings.user, any(m.kind == "bind" for m in spec.mounts),
                             spec.unsafe, spec.source_path)
        ctx = RunContext(run_id=self.run_id, settings=settings, command=spec.command,
                         program=spec.program, environ=macro_env,
                         secrets=secret_values(spec, self.on_line),
                         asks_as_slots_free=spec.adaptive)
        if self.on_line:
            self.on_line(f"setting up {len(backend.workers()) or 'the'} worker(s): the image "
                         "goes where it is missing")
        backend.setup(image=image, run=ctx)
        return backend, image, ctx

    def _image(self, backend: Backend) -> BuiltImage:
        from launcher.same_image import run_image

        def build_it() -> BuiltImage:
            return build(self.spec, backend.builder(), self.on_line)

        if self.expected is None:
            return build_it()
        return run_image(self.expected, backend.builder(), backend.hosts(), build_it,
                         self.notes, self.run_id)

    def __exit__(self, *exc: object) -> None:
        if self.backend is not None:
            with self.signals.deferred():
                try:
                    self.backend.teardown()
                finally:
                    self.backend.close()


def build(spec: SweepSpec, host: Host, on_line: LineSink | None = None) -> BuiltImage:
    """The sweep's image on ``host``: built once, cached by content."""
    from pathlib import Path

    from launcher.image import ensure_image

    # The results root and the sweep file are launcher inputs and outputs, never the job's.
    leave_out = [Path(spec.results)] + ([Path(spec.source_path)] if spec.source_path else [])
    return ensure_image(host.client, spec.image, spec.base_dir, on_line, leave_out=leave_out)


def build_locally(spec: SweepSpec, on_line: LineSink | None = None, *,
                  required: bool = True) -> BuiltImage | None:
    """`launch build` and `launch hosts`: the sweep's image on the local engine (None when
    no local engine answers and it is not ``required``)."""
    from launcher.hosts import connect_local

    host = connect_local(cpus_per_trial=spec.resources.cpus, required=required)
    if host is None:
        return None
    try:
        return build(spec, host, on_line)
    finally:
        host.close()


def resolve_environment(spec: SweepSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(what the command's ``${envvar:NAME}`` read, the trials' ``env``), resolved before
    anything starts. Both live in memory only, never on disk."""
    from launcher.command import envvar_names
    from launcher.sections import resolve_env

    names = envvar_names(spec.command or ())
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise SweepError(f"command uses ${{envvar:{missing[0]}}} but {missing[0]} is not set "
                         "in the launcher's environment", path=spec.source_path)
    try:
        trial_env = resolve_env(spec.env, os.environ)
    except ValueError as e:
        raise SweepError(str(e), path=spec.source_path) from None
    return {n: os.environ[n] for n in names}, trial_env


def secret_values(spec: SweepSpec, on_line: LineSink | None = None) -> tuple[str, ...]:
    """The values ``${envvar:NAME}`` takes from the launcher's environment (in the command
    and in ``env``): the run masks them in everything it writes."""
    from launcher.command import envvar_names
    from launcher.secrets import MIN_LENGTH
    from launcher.sections import envvar_references

    names = dict.fromkeys([*envvar_names(spec.command or ()), *envvar_references(spec.env)])
    values = [os.environ[n] for n in names if n in os.environ]
    for name in names:
        if on_line and 0 < len(os.environ.get(name, "")) < MIN_LENGTH:
            on_line(f"note: ${{envvar:{name}}} is shorter than {MIN_LENGTH} characters and "
                    "is not masked in the results")
    return tuple(values)


def container_settings(spec: SweepSpec, image: BuiltImage, run_id: str,
                       env: dict[str, str]) -> ContainerSettings:
    from launcher.command import uses_params_file
    from launcher.runtime import home_environment

    return ContainerSettings(
        image=image.id, run_id=run_id, sweep=spec.name,
        env={**home_environment(image.env), **env},  # the sweep's env wins
        resources=spec.resources,
        network=spec.network, user=image.run_as(spec.user), outputs=spec.outputs,
        timeout=spec.timeout, stop_grace=spec.stop_grace, log_limit=spec.log_limit,
        outputs_limit=spec.outputs_limit,
        mounts=tuple((m.kind, os.path.realpath(m.source) if m.kind == "bind" else m.source,
                      m.target) for m in spec.mounts),
        params_file=uses_params_file(spec.command),
        metric=spec.metric.name if spec.metric else None,
        strict_metrics=spec.strict_metrics)
