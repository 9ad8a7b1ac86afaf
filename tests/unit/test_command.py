"""Rendering argv: W&B macros, nested names, values verbatim and never through a shell."""

from __future__ import annotations

import json

import pytest

from launcher.command import check_template, render
from launcher.trial import Trial

TRIAL = Trial("t1", "c1", 0, 2, 9, (("lr", 0.001), ("model.hidden", 64), ("flag", True),
                                    ("off", False), ("name", "$(touch /tmp/pwned); `id`")))


def test_no_command_no_program_passes_args_to_the_entrypoint() -> None:
    argv = render(None, None, TRIAL, {})
    assert argv.entrypoint is None
    assert argv.command == ["--lr=0.001", "--model.hidden=64", "--flag=True", "--off=False",
                            "--name=$(touch /tmp/pwned); `id`"]


def test_program_without_command_is_interpreter_program_args() -> None:
    argv = render(None, "train.py", TRIAL, {})
    assert argv.entrypoint is not None
    assert argv.entrypoint[:3] == ["python3", "train.py", "--lr=0.001"]
    assert argv.command == []


def test_all_list_macros() -> None:
    command = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}",
               "${args_no_boolean_flags}", "${args_json}", "${args_no_equals}",
               "${args_json_file}"]
    argv = render(command, "x.py", TRIAL, {})
    assert argv.entrypoint == [
        "python3", "x.py",
        "lr=0.001", "model.hidden=64", "flag=True", "off=False", "name=$(touch /tmp/pwned); `id`",
        "--lr=0.001", "--model.hidden=64", "--flag", "--name=$(touch /tmp/pwned); `id`",
        # W&B's agent: json.dumps with its default separators
        json.dumps({"lr": 0.001, "model": {"hidden": 64}, "flag": True, "off": False,
                    "name": "$(touch /tmp/pwned); `id`"}),
        "--lr", "0.001", "--model.hidden", "64", "--flag", "True", "--off", "False",
        "--name", "$(touch /tmp/pwned); `id`",
        "/run/launcher/params.json",
    ]


def test_text_macros_inside_items_and_envvar() -> None:
    argv = render(["run", "--seed=${seed}", "--id=${trial_id}-${replica}", "${envvar:TOKEN}"],
                  None, TRIAL, {"TOKEN": "s3cret"})
    assert argv.entrypoint == ["run", "--seed=9", "--id=t1-2", "s3cret"]


def test_missing_envvar_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="TOKEN is not set"):
        render(["${envvar:TOKEN}"], None, TRIAL, {})


@pytest.mark.parametrize(("items", "words"), [
    (["--x=${args}"], "whole argv item"),
    (["${nope}"], "unknown macro"),
    (["${envvar:1BAD}"], "unknown macro"),
])
def test_bad_templates(items: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_template(items)


def test_values_render_as_w_and_b_writes_them() -> None:
    trial = Trial("t", "c", 0, 0, 0, (("layers", [64, 32]), ("opt", {"b1": 0.9}),
                                      ("lr", 1e-05), ("q", 5.0), ("none", None),
                                      ("names", ["a", "b"])))
    assert render(None, None, trial, {}).command == [
        "--layers=[64, 32]", "--opt={'b1': 0.9}", "--lr=1e-05", "--q=5.0", "--none=None",
        "--names=['a', 'b']"]


def test_dotted_parameter_names_are_one_key_in_json() -> None:
    trial = Trial("t", "c", 0, 0, 0, (("a.b", 1), ("m.h", 2)), (("a.b",), ("m", "h")))
    argv = render(["${args}", "${args_json}"], None, trial, {})
    assert argv.entrypoint == ["--a.b=1", "--m.h=2", '{"a.b": 1, "m": {"h": 2}}']
