"""Command-line overrides of a sweep file (``--replicas``, ``--set a.b=v``, ``--host``, ...).

Overrides are applied to the loaded YAML data before validation, so an overridden
value is checked exactly like one written in the file; its errors name the option.
They are kept in the run's manifest so that ``launch resume`` re-plans the same trials.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import UsageError
from launcher.yamlfile import KeyPath, YamlDoc, parse_yaml, read_yaml_file

if TYPE_CHECKING:
    from launcher.sections import HostSpec

HOST_OPTIONS = ("slots", "name", "cert_path")


@dataclass(frozen=True)
class Overrides:
    """What the command line says; None/empty means "as in the file"."""

    replicas: int | None = None
    seed: int | None = None
    sets: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    hosts_file: str | None = None
    backend: str | None = None
    ray_address: str | None = None
    results: str | None = None
    max_parallel: int | None = None
    skip_unreachable: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Overrides:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        return cls(**values)


def apply_overrides(doc: YamlDoc, o: Overrides) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """A copy of the document's data with the overrides applied, and which paths they set."""
    data: dict[str, Any] = copy.deepcopy(doc.data)
    labels: dict[KeyPath, str] = {}
    simple = {"replicas": o.replicas, "seed": o.seed, "backend": o.backend,
              "results": o.results, "max_parallel": o.max_parallel,
              "skip_unreachable": o.skip_unreachable}
    for key, value in simple.items():
        if value is not None:
            data[key] = value
            labels[(key,)] = f"--{key.replace('_', '-')}"
    if o.ray_address is not None:
        data["ray"] = {"address": o.ray_address}
        labels[("ray",)] = "--ray-address"
    for item in o.sets:
        labels[_apply_set(data, item)] = f"--set {item.split('=', 1)[0]}"
    hosts = _hosts_from_file(o.hosts_file) if o.hosts_file else []
    hosts += [parse_host_option(spec) for spec in o.hosts]
    if hosts:
        data["hosts"] = hosts
        labels[("hosts",)] = "--host" if o.hosts else f"--hosts {o.hosts_file}"
    return data, labels


def _apply_set(data: dict[str, Any], item: str) -> KeyPath:
    if "=" not in item or not item.split("=", 1)[0].strip():
        raise UsageError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set resources.cpus=2")
    path_text, value_text = item.split("=", 1)
    adding = path_text.startswith("+")  # Hydra's convention: +key=value adds a new key
    path_text = path_text.removeprefix("+")
    try:
        value = parse_yaml(value_text, "--set").data if value_text else ""
    except Exception as e:  # a SweepError; re-labelled as a command-line problem
        raise UsageError(f"--set {item!r}: the value is not valid YAML ({e})") from None
    segments = path_text.strip().split(".")
    if any(not s for s in segments):
        raise UsageError(f"--set {item!r}: bad key path {path_text!r}")
    node: Any = data
    at: KeyPath = ()
    for seg in segments[:-1]:
        node, step = _descend(node, seg, path_text)
        at = (*at, *step)
    if isinstance(node, list):
        index = _index(node, segments[-1], path_text)
        node[index] = value
        return (*at, index)
    if not isinstance(node, dict):
        raise UsageError(f"--set {item!r}: {'.'.join(segments[:-1])} is a value, not a section")
    leaf = segments[-1]
    group = node.get("parameters")
    if leaf not in node and isinstance(group, dict) and (leaf in group or adding):
        node, at = group, (*at, "parameters")
    if leaf not in node and not adding and "parameters" in at:
        close = difflib.get_close_matches(leaf, list(node) + list(group or {}), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `launch plan`"
        raise UsageError(f"--set {path_text}: the sweep has no parameter {leaf!r} ({hint}); "
                         f"write --set +{path_text}=... to add one")
    node[leaf] = value
    return (*at, leaf)


def _descend(node: Any, seg: str, path_text: str) -> tuple[Any, KeyPath]:
    if isinstance(node, list):
        index = _index(node, seg, path_text)
        return node[index], (index,)
    if not isinstance(node, dict):
        raise UsageError(f"--set {path_text}: cannot go into {seg!r}: its parent is a value")
    group = node.get("parameters")
    if seg not in node and isinstance(group, dict) and seg in group:
        # Dotted parameter names reach into nested groups: parameters.model.hidden
        return group[seg], ("parameters", seg)
    if seg not in node:
        node[seg] = {}
    return node[seg], (seg,)


def _index(node: list[Any], seg: str, path_text: str) -> int:
    if not seg.isdigit() or int(seg) >= len(node):
        raise UsageError(f"--set {path_text}: {seg!r} is not an index of a list of {len(node)}")
    return int(seg)


def parse_host_option(spec: str) -> dict[str, Any]:
    """``URL[,slots=N][,name=NAME][,cert_path=DIR]`` -> a hosts entry."""
    url, *options = spec.split(",")
    if not url:
        raise UsageError(f"--host {spec!r}: the URL is missing")
    entry: dict[str, Any] = {"url": url}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in HOST_OPTIONS:
            raise UsageError(f"--host {spec!r}: unknown option {option!r} "
                             f"(known: {', '.join(HOST_OPTIONS)})")
        if key == "slots":
            if not value.isdigit():
                raise UsageError(f"--host {spec!r}: slots must be a positive integer")
            entry[key] = int(value)
        else:
            entry[key] = value
    return entry


def host_specs(hosts: tuple[str, ...], hosts_file: str | None) -> tuple[HostSpec, ...] | None:
    """``--host`` options and a ``--hosts`` file as validated hosts (None: neither given)."""
    from launcher.schema import Reader
    from launcher.sections import parse_hosts

    if not hosts and not hosts_file:
        return None
    data, labels = apply_overrides(YamlDoc({}, "<command line>"),
                                   Overrides(hosts=hosts, hosts_file=hosts_file))
    return parse_hosts(Reader(YamlDoc(data, "<command line>"), labels), data["hosts"],
                       ("hosts",), Path.cwd())


def _hosts_from_file(path: str) -> list[dict[str, Any]]:
    from launcher.schema import Reader
    from launcher.sections import parse_hosts

    doc = read_yaml_file(path)
    raw = doc.data.get("hosts") if isinstance(doc.data, dict) else doc.data
    at: KeyPath = ("hosts",) if isinstance(doc.data, dict) else ()
    specs = parse_hosts(Reader(doc), raw, at, Path(path).resolve().parent)
    return [{k: v for k, v in asdict(h).items() if v is not None} for h in specs]
