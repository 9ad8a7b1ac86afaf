"""The sweep file: read, apply command-line overrides, validate, build a frozen SweepSpec.

The format is a superset of the Weights & Biases sweep format (``method``, ``metric``,
``parameters``, ``program``, ``command``, ...) plus the launcher's own keys (``image``,
``replicas``, ``hosts``, ``resources``, ...). Precedence: command line > file > defaults.
Every problem is a :class:`SweepError` pointing at the file and line of the key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher import defaults
from launcher.command import check_template
from launcher.errors import SweepError
from launcher.overrides import Overrides, apply_overrides
from launcher.parameters import DEPRECATED, GRID_KINDS, ParamSpec, parse_parameters
from launcher.safety import UNSAFE_WARNINGS, check_sweep, parse_unsafe
from launcher.schema import Reader, scalar_text
from launcher.sections import (
    HostSpec,
    ImageSpec,
    Mount,
    RaySection,
    Resources,
    parse_env,
    parse_hosts,
    parse_image,
    parse_mounts,
    parse_resources,
)
from launcher.units import parse_duration, parse_memory
from launcher.wandb_keys import (
    SERVICE_KEYS,
    Hyperband,
    Metric,
    check_service_keys,
    parse_early_terminate,
    parse_metric,
)
from launcher.yamlfile import YamlDoc, read_yaml_file

MAX_TRIALS = 1_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
WANDB_KEYS = ("method", "run_cap", "metric", "metrics", "program", "command", "name",
              "description", "parameters", "early_terminate")
SAMPLERS = ("tpe", "gp", "cmaes", "qmc", "random")  # Optuna's samplers for method: bayes
LAUNCHER_KEYS = ("image", "replicas", "seed", "seed_mode", "hosts", "backend", "ray",
                 "resources", "timeout", "deadline", "stop_grace", "retries",
                 "no_retry_exit_codes", "max_consecutive_failures", "network", "env",
                 "outputs", "results", "max_parallel", "mounts", "user", "log_limit",
                 "outputs_limit", "strict_metrics", "skip_unreachable", "unsafe",
                 "sampler")
TOP_KEYS = (*WANDB_KEYS, *SERVICE_KEYS, *LAUNCHER_KEYS)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: everything needed to plan and launch, nothing resolved yet."""

    name: str
    parameters: tuple[ParamSpec, ...]
    method: str = "grid"
    description: str = ""
    run_cap: int | None = None
    metric: Metric | None = None
    sampler: str = "tpe"  # method: bayes only
    early_terminate: Hyperband | None = None
    program: str | None = None
    command: tuple[str, ...] | None = None
    image: ImageSpec = field(default_factory=ImageSpec)
    replicas: int = defaults.REPLICAS
    seed: int = defaults.SEED
    seed_mode: str = defaults.SEED_MODE
    hosts: tuple[HostSpec, ...] = (HostSpec("local", "local"),)
    skip_unreachable: bool = False  # leave out hosts that do not answer (and say so)
    backend: str = "docker"
    ray: RaySection = field(default_factory=RaySection)
    resources: Resources = field(default_factory=Resources)
    timeout: float | None = None
    deadline: float | None = None
    stop_grace: float = defaults.STOP_GRACE
    retries: int = 0
    no_retry_exit_codes: tuple[int, ...] = ()
    max_consecutive_failures: int | None = None
    network: str = defaults.NETWORK
    env: tuple[tuple[str, str], ...] = ()
    outputs: bool = True
    results: str = defaults.RESULTS_ROOT
    max_parallel: int | None = None
    mounts: tuple[Mount, ...] = ()
    user: str | None = None
    log_limit: int = defaults.LOG_LIMIT
    outputs_limit: int = defaults.OUTPUTS_LIMIT
    strict_metrics: bool = False  # a trial without metric.name in its metrics fails
    unsafe: frozenset[str] = frozenset()  # opt-ins of launcher.safety, by name
    source_path: str | None = None
    source_text: str = ""
    overrides: Overrides = field(default_factory=Overrides)
    warnings: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        """The run folder's name: a safe slug of any sweep name (see :func:`folder_name`)."""
        return folder_name(self.name)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the file (build context, mounts) are relative to this."""
        return Path(self.source_path).parent if self.source_path else Path.cwd()

    @property
    def adaptive(self) -> bool:
        """Trials are chosen as results arrive (bayes), not planned up front."""
        return self.method == "bayes"

    def configurations(self) -> int:
        """How many configurations the plan has (before replicas); for adaptive search,
        at most this many are asked."""
        if self.method in ("random", "bayes"):
            assert self.run_cap is not None
            return self.run_cap
        size = 1
        for p in self.parameters:
            size *= p.grid_size()
        return min(size, self.run_cap) if self.run_cap else size


def load_sweep(path: str | Path, overrides: Overrides | None = None) -> SweepSpec:
    """Read, override and validate a sweep file. Raises SweepError (exit code 2)."""
    doc = read_yaml_file(path)
    text = Path(path).read_text(encoding="utf-8")
    return build_spec(doc, overrides or Overrides(), source_path=str(Path(path).resolve()),
                      source_text=text, default_name=Path(path).stem)


def build_spec(doc: YamlDoc, overrides: Overrides, *, source_path: str | None = None,
               source_text: str = "", default_name: str = "sweep") -> SweepSpec:
    if doc.data is None:
        raise SweepError("the sweep file is empty", path=doc.path)
    if not isinstance(doc.data, dict):
        raise SweepError("the top level of a sweep file must be a mapping of keys "
                         f"(got a {type(doc.data).__name__})", path=doc.path, line=1)
    data, overridden = apply_overrides(doc, overrides)
    reader = Reader(doc, overridden)
    reader.check_keys(data, (), TOP_KEYS)
    for key in ("description", "program"):
        if key in data and not isinstance(data[key], str):
            raise reader.error((key,), "must be a string")
    method = _method(reader, data)
    parameters = parse_parameters(reader, data["parameters"], ("parameters",)) \
        if "parameters" in data else ()
    unsafe = parse_unsafe(reader, data.get("unsafe"))
    warnings = [*(f"{doc.path}: {note}" for note in doc.notes),
                *check_service_keys(reader, data, method["method"]),
                *_deprecations(parameters),
                *(f"{UNSAFE_WARNINGS[key]} (the sweep file says so)" for key in sorted(unsafe))]
    spec = SweepSpec(
        name=_name(reader, data, default_name), parameters=parameters,
        description=str(data.get("description") or ""), **method,
        **_command(reader, data),
        **_launcher_keys(reader, data, source_path),
        source_path=source_path, source_text=source_text, overrides=overrides,
        warnings=tuple(warnings), unsafe=unsafe,
    )
    _check_plan_size(reader, spec)
    check_sweep(reader, mounts=spec.mounts, hosts=spec.hosts, user=spec.user,
                backend=spec.backend, unsafe=spec.unsafe)
    return spec


def _name(reader: Reader, data: dict[str, Any], default: str) -> str:
    """Any string, as in W&B; the run folder uses :func:`folder_name` of it."""
    name = data.get("name", default)
    if not isinstance(name, str):
        raise reader.error(("name",), f"must be a string, got {name!r}")
    return name


def folder_name(name: str) -> str:
    """A file-system-safe slug of a sweep name: letters, digits and ``._-`` kept, anything
    else a ``-``, no leading dot; a name that needed changing gets 6 hex digits of its
    hash, so that two names never share a folder (``My Sweep`` -> ``My-Sweep-1f0c3e``,
    ``..`` -> ``sweep-...``). A name that is already safe is its own folder."""
    slug = _UNSAFE.sub("-", name).strip("-.")[:80] or "sweep"
    if slug == name and slug not in (".", ".."):
        return slug
    return f"{slug}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"


def _method(reader: Reader, data: dict[str, Any]) -> dict[str, Any]:
    method = data.get("method", "grid")
    if method == "custom":
        raise reader.error(("method",), "method 'custom' is not supported yet",
                           hint="use grid, random or bayes")
    method = reader.choice(method, ("method",), ("grid", "random", "bayes"))
    if "metrics" in data:
        raise reader.error(("metrics",), "multi-objective `metrics` needs method: custom "
                           "(W&B's rule), which is not supported here", hint="use `metric`")
    run_cap = None
    if "run_cap" in data:
        raw = data["run_cap"]
        if isinstance(raw, float) and raw.is_integer():  # W&B's schema takes 5.0 as 5
            raw = int(raw)
        run_cap = reader.integer(raw, ("run_cap",), minimum=1)
    elif method in ("random", "bayes"):
        what = "samples" if method == "random" else "configurations to try"
        raise reader.error(("method",), f"method {method!r} needs run_cap (how many {what})",
                           hint="add `run_cap: N` to the sweep file or pass --set run_cap=N; "
                           "W&B runs until stopped")
    metric = parse_metric(reader, data["metric"]) if "metric" in data else None
    if method == "bayes" and metric is None:
        raise reader.error(("method",), "method 'bayes' needs `metric` (what to optimise)",
                           hint="add metric: {name: ..., goal: minimize|maximize}")
    out: dict[str, Any] = {"method": method, "run_cap": run_cap, "metric": metric}
    if "sampler" in data:
        if method != "bayes":
            raise reader.error(("sampler",), "sampler chooses how method: bayes searches; "
                               f"method {method!r} does not use it", hint="drop it, or use "
                               "method: bayes")
        out["sampler"] = reader.choice(data["sampler"], ("sampler",), SAMPLERS)
    if "early_terminate" in data:
        out["early_terminate"] = parse_early_terminate(reader, data["early_terminate"], metric)
    return out


def _deprecations(parameters: tuple[ParamSpec, ...]) -> list[str]:
    return [f"parameter {p.name!r}: {p.kind} takes min/max as exponents of e, and W&B's "
            f"engine refuses it as deprecated; use {DEPRECATED[p.kind]} for bounds that are "
            "values" for p in parameters if p.kind in DEPRECATED]


def _command(reader: Reader, data: dict[str, Any]) -> dict[str, Any]:
    program = reader.string(data["program"], ("program",)) if "program" in data else None
    command = None
    if "command" in data:
        if isinstance(data["command"], str):
            raise reader.error(("command",), "must be a list of argv items (nothing runs "
                               "through a shell)", hint="for example [python3, train.py, "
                               "${args}]")
        command = reader.string_list(data["command"], ("command",))
        if not command:
            raise reader.error(("command",), "must not be empty")
        try:
            check_template(command)
        except ValueError as e:
            raise reader.error(("command",), str(e)) from None
        if "${program}" in " ".join(command) and program is None:
            raise reader.error(("command",), "uses ${program} but the file sets no program")
    return {"program": program, "command": command}


def _launcher_keys(reader: Reader, data: dict[str, Any], source: str | None) -> dict[str, Any]:
    base = Path(source).parent if source else Path.cwd()
    out: dict[str, Any] = {
        "image": parse_image(reader, data.get("image"), base),
        "replicas": reader.integer(data.get("replicas", defaults.REPLICAS), ("replicas",),
                                   minimum=1),
        "seed": reader.integer(data.get("seed", defaults.SEED), ("seed",), minimum=0),
        "seed_mode": reader.choice(data.get("seed_mode", defaults.SEED_MODE), ("seed_mode",),
                                   ("distinct", "fixed")),
        "hosts": parse_hosts(reader, data["hosts"], ("hosts",), base) if "hosts" in data
        else (HostSpec("local", "local"),),
        "skip_unreachable": reader.boolean(data.get("skip_unreachable", False),
                                           ("skip_unreachable",)),
        "backend": reader.choice(data.get("backend", "docker"), ("backend",),
                                 ("docker", "ray")),
        "ray": _ray(reader, data.get("ray")),
        "resources": parse_resources(reader, data.get("resources")),
        "retries": reader.integer(data.get("retries", 0), ("retries",), minimum=0),
        "network": reader.choice(data.get("network", defaults.NETWORK), ("network",),
                                 ("none", "bridge")),
        "env": parse_env(reader, data.get("env")),
        "results": reader.string(data.get("results", defaults.RESULTS_ROOT), ("results",)),
        "mounts": parse_mounts(reader, data.get("mounts"), base),
    }
    for key in ("timeout", "deadline"):
        out[key] = _duration(reader, data, key) if data.get(key) is not None else None
    out["stop_grace"] = _duration(reader, data, "stop_grace", allow_zero=True) \
        if "stop_grace" in data else defaults.STOP_GRACE
    for key in ("max_parallel", "max_consecutive_failures"):
        if data.get(key) is not None:
            out[key] = reader.integer(data[key], (key,), minimum=1)
    if "no_retry_exit_codes" in data:
        raw = data["no_retry_exit_codes"]
        if not isinstance(raw, list):
            raise reader.error(("no_retry_exit_codes",), "must be a list of exit codes")
        out["no_retry_exit_codes"] = tuple(
            reader.integer(c, ("no_retry_exit_codes", i)) for i, c in enumerate(raw))
    if data.get("user") is not None:
        out["user"] = scalar_text(data["user"])
    for key in ("log_limit", "outputs_limit"):
        if key in data:
            out[key] = _memory(reader, data, key)
    for key, default in (("outputs", True), ("strict_metrics", False)):
        out[key] = reader.boolean(data.get(key, default), (key,))
    return out


def _ray(reader: Reader, raw: object) -> RaySection:
    if raw is None:
        return RaySection()
    ray = reader.mapping(raw, ("ray",))
    reader.check_keys(ray, ("ray",), ("address",))
    address = ray.get("address")
    return RaySection(None if address is None else reader.string(address, ("ray", "address")))


def _duration(reader: Reader, data: dict[str, Any], key: str, allow_zero: bool = False) -> float:
    try:
        seconds = parse_duration(data[key])
    except ValueError as e:
        raise reader.error((key,), str(e)) from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise reader.error((key,), f"must be greater than 0, got {data[key]!r}")
    return seconds


def _memory(reader: Reader, data: dict[str, Any], key: str) -> int:
    try:
        size = parse_memory(data[key])
    except ValueError as e:
        raise reader.error((key,), str(e)) from None
    if size <= 0:
        raise reader.error((key,), "must be greater than 0")
    return size


def param_key_path(p: ParamSpec) -> tuple[str, ...]:
    """Where parameter ``model.hidden`` sits in the file: parameters.model.parameters.hidden."""
    out: tuple[str, ...] = ()
    for part in p.key_path:
        out = (*out, "parameters", part)
    return out


def _check_search(reader: Reader, spec: SweepSpec) -> None:
    """method: bayes needs something to search and the packages of its sampler."""
    from launcher.search.deps import install_hint, missing_packages

    if not any(p.kind != "constant" for p in spec.parameters):
        raise reader.error(("parameters",) if spec.parameters else ("method",),
                           "method 'bayes' needs at least one parameter to search (W&B's "
                           "rule)", hint="give a parameter values or a distribution")
    missing = missing_packages(spec.sampler, spec.parameters)
    if missing:
        names = " and ".join(missing)
        given = ("sampler",) in reader.doc.lines or ("sampler",) in reader.overridden
        at = ("sampler",) if given else ("method",)
        raise reader.error(at, f"method 'bayes' with sampler {spec.sampler} needs the Python "
                           f"package{'s' if len(missing) > 1 else ''} {names}, not installed",
                           hint=install_hint(missing))


def _check_plan_size(reader: Reader, spec: SweepSpec) -> None:
    if spec.method == "bayes":
        _check_search(reader, spec)
    if spec.method == "grid":
        for p in spec.parameters:
            if p.probabilities is not None:
                raise reader.error(
                    (*param_key_path(p), "probabilities"),
                    f"grid search cannot use the probabilities of parameter {p.name!r} "
                    "(W&B refuses them too)", hint="drop them, or use method: random")
            if p.kind not in GRID_KINDS:
                raise reader.error(
                    param_key_path(p),
                    f"grid search cannot enumerate the continuous distribution {p.kind} of "
                    f"parameter {p.name!r} (W&B would run forever)",
                    hint="give it `values`, or use method: random with run_cap")
    configs = spec.configurations()
    trials = configs * spec.replicas
    if trials > MAX_TRIALS:
        at = ("replicas",) if spec.replicas > 1 else ("parameters",)
        raise reader.error(at, f"the plan has {configs:,} configurations x {spec.replicas:,} "
                           f"replicas = {trials:,} trials, above the limit of {MAX_TRIALS:,}")
