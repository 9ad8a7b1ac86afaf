"""Rendering a trial's argv from the sweep's ``command`` / ``program`` (W&B macros).

The result is a list of argv items handed to the Docker engine as-is: no shell ever
sees a parameter value, so ``$(rm -rf /)`` arrives in the container as those bytes.

List macros must be whole items: ``${args}`` (``--name=value``), ``${args_no_hyphens}``
(``name=value``), ``${args_no_boolean_flags}`` (``--flag`` for true, nothing for false),
``${args_no_equals}`` (``--name`` and ``value`` as two items), ``${args_json}`` (one JSON
item), ``${args_json_file}`` (the path of a read-only JSON file of the parameters),
``${env}`` (nothing: the engine passes the environment). Text macros may sit inside an
item: ``${interpreter}``, ``${program}``, ``${envvar:NAME}``, and the launcher's own
``${seed}``, ``${trial_id}``, ``${replica}``. Values are written as W&B's agent writes
them (Python's ``str``: ``True``, ``None``, ``[1, 2]``, ``1e-05``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.trial import PARAMS_PATH, Trial

INTERPRETER = "python3"
PARAMS_FILE_MACRO = "${args_json_file}"
LIST_MACROS = ("${args}", "${args_no_hyphens}", "${args_no_boolean_flags}",
               "${args_no_equals}", "${args_json}", PARAMS_FILE_MACRO, "${env}")
TEXT_MACROS = ("interpreter", "program", "seed", "trial_id", "replica")
_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENVVAR = re.compile(r"envvar:([A-Za-z_][A-Za-z0-9_]*)")  # the inside of ${...}
ENVVAR_MACRO = re.compile(r"\$\{envvar:([A-Za-z_][A-Za-z0-9_]*)\}")  # the whole macro


@dataclass(frozen=True, slots=True)
class Argv:
    """What to give the engine: ``entrypoint`` None keeps the image's entrypoint."""

    entrypoint: list[str] | None
    command: list[str]


def check_template(items: Sequence[str]) -> None:
    """Raise ValueError naming the first macro that is unknown or misplaced."""
    for item in items:
        if item in LIST_MACROS:
            continue
        for match in _MACRO.finditer(item):
            name = match.group(1)
            if f"${{{name}}}" in LIST_MACROS:
                raise ValueError(f"{match.group(0)} must be a whole argv item, not part of "
                                 f"{item!r}")
            if name not in TEXT_MACROS and not _ENVVAR.fullmatch(name):
                known = ", ".join([*LIST_MACROS, *(f"${{{m}}}" for m in TEXT_MACROS),
                                   "${envvar:NAME}"])
                raise ValueError(f"unknown macro {match.group(0)} (known: {known})")


def envvar_names(items: Sequence[str]) -> list[str]:
    """Names of the launcher environment variables that ``${envvar:NAME}`` items read."""
    return [m.group(1) for item in items for m in ENVVAR_MACRO.finditer(item)]


def value_text(value: Any) -> str:
    """How one parameter value is written in an argv item: Python's ``str``, exactly as
    W&B's agent writes it (``--flag=True``, ``--layers=[64, 32]``, ``--lr=1e-05``)."""
    return str(value)


def params_json(trial: Trial) -> str:
    """The parameters as W&B's ``${args_json}`` and its parameter file hold them."""
    return json.dumps(trial.nested_params())


def uses_params_file(command: Sequence[str] | None) -> bool:
    return command is not None and PARAMS_FILE_MACRO in command


def render(command: Sequence[str] | None, program: str | None, trial: Trial,
           environ: Mapping[str, str]) -> Argv:
    """The argv of one trial. ``environ`` supplies ``${envvar:NAME}``."""
    if command is None and program is None:
        return Argv(None, _args(trial, "${args}"))
    template = list(command) if command is not None else ["${interpreter}", "${program}",
                                                          "${args}"]
    out: list[str] = []
    for item in template:
        if item in LIST_MACROS:
            out.extend(_args(trial, item))
        else:
            out.append(_MACRO.sub(lambda m: _text_macro(m.group(1), trial, program, environ),
                                  item))
    return Argv(out, [])


def _args(trial: Trial, macro: str) -> list[str]:
    if macro == "${env}":
        return []
    if macro == "${args_json}":
        return [params_json(trial)]
    if macro == PARAMS_FILE_MACRO:
        return [PARAMS_PATH]
    out = []
    for name, value in trial.params:
        if macro == "${args_no_equals}":
            out += [f"--{name}", value_text(value)]
        elif macro == "${args_no_hyphens}":
            out.append(f"{name}={value_text(value)}")
        elif macro == "${args_no_boolean_flags}" and isinstance(value, bool):
            if value:
                out.append(f"--{name}")
        else:
            out.append(f"--{name}={value_text(value)}")
    return out


def _text_macro(name: str, trial: Trial, program: str | None, environ: Mapping[str, str]) -> str:
    if name == "interpreter":
        return INTERPRETER
    if name == "program":
        return program or ""
    if name == "seed":
        return str(trial.seed)
    if name == "trial_id":
        return trial.trial_id
    if name == "replica":
        return str(trial.replica)
    match = _ENVVAR.fullmatch(name)
    assert match, f"unchecked macro {name}"
    try:
        return environ[match.group(1)]
    except KeyError:
        raise ValueError(f"${{envvar:{match.group(1)}}} is used but {match.group(1)} is not "
                         "set in the launcher's environment") from None
