"""What W&B accepts is accepted, what it refuses is refused (file:line), numbers are
numbers, names of any kind get a safe folder, and the W&B macros render as W&B does."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.errors import SweepError
from launcher.plan import expand
from launcher.spec import folder_name, load_sweep


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return load_sweep(path)


def refusal(tmp_path: Path, text: str) -> SweepError:
    with pytest.raises(SweepError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{tmp_path / 'sweep.yaml'}:{info.value.line}: ")
    return info.value


ACCEPTED_BY_WANDB = """\
apiVersion: v1
kind: sweep
controller: {type: local}
name: My Sweep ünïcode
method: random
run_cap: 10
project: p
entity: e
job: me/proj/job:latest
image_uri: example/image:1
metric: {name: loss, goal: minimize, target: 0.1, impute: best, impute_while_running: latest}
early_terminate: {type: hyperband, min_iter: 3, eta: 2}
parameters:
  a.b: {values: [1, 1, 2]}
  c: {values: [x, y, z], probabilities: [0.33333, 0.33333, 0.33333]}
  d: {distribution: categorical_w_probabilities, values: [1, 2], probabilities: [0.2, 0.8]}
  lr: {min: 1e-5, max: 1E-1}
"""


def test_what_wandb_accepts_is_accepted_with_warnings_for_service_keys(tmp_path: Path) -> None:
    spec = load(tmp_path, ACCEPTED_BY_WANDB)
    assert spec.name == "My Sweep ünïcode"
    assert [p.name for p in spec.parameters] == ["a.b", "c", "d", "lr"]
    lr = spec.parameters[3]
    assert (lr.kind, lr.min, lr.max) == ("uniform", 1e-5, 0.1)
    assert spec.parameters[1].probabilities is not None
    assert abs(sum(spec.parameters[1].probabilities) - 1.0) < 1e-15  # renormalised
    assert spec.metric is not None and spec.metric.target == 0.1
    assert spec.metric.impute == "best" and spec.metric.impute_while_running == "latest"
    for key in ("controller", "apiVersion", "kind", "job", "image_uri", "project", "entity"):
        assert any(f"'{key}' has no effect here" in w for w in spec.warnings), key
    assert spec.early_terminate is not None and spec.early_terminate.bands()[:3] == (3, 6, 12)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("parameters:\n  a: {values: [1, 2], probabilities: [0.5, 0.5]}\n", 2,
     "cannot use the probabilities"),
    ("parameters:\n  a: {distribution: categorical, values: [1, 2], probabilities: [0.5, 0.5]}\n",
     2, "'probabilities' has no meaning for distribution categorical"),
    ("method: random\nrun_cap: 2\nparameters:\n  a: {values: [1, 2], probabilities: [0.5, 0.4]}\n",
     4, "must sum to 1"),
    ("method: random\nrun_cap: 2\nparameters:\n  a: {values: [1], probabilities: [-1]}\n", 4,
     "must not be negative"),
    ("method: random\nrun_cap: 2\nparameters:\n  a: {min: 3, max: 3}\n", 4,
     "must be less than max"),
    ("parameters:\n  1a: {values: [1]}\n", 2, "must start with a letter"),
    ("parameters:\n  'a b': {values: [1]}\n", 2, "must start with a letter"),
    ("parameters: {}\n", 1, "at least one parameter"),
    ("method: custom\nparameters: {a: 1}\n", 1, "'custom' is not supported"),
    ("metrics: [{name: a}, {name: b}]\nparameters: {a: 1}\n", 1, "needs method: custom"),
    ("kind: job\nparameters: {a: 1}\n", 1, "must be one of sweep"),
    ("controller: {type: remote}\nparameters: {a: 1}\n", 1, "must be one of local, cloud"),
    ("controller: {}\nparameters: {a: 1}\n", 1, "needs 'type'"),
    ("apiVersion: 1\nparameters: {a: 1}\n", 1, "must be a string"),
    ("early_terminate: {type: hyperband}\nparameters: {a: 1}\n", 1, "min_iter, or max_iter"),
    ("early_terminate: {type: hyperband, min_iter: 2, eta: 1}\nparameters: {a: 1}\n", 1,
     "greater than 1"),
    ("metric: {name: a, impute: mean}\nparameters: {a: 1}\n", 1, "must be one of latest"),
    ("metric: {name: a, target: high}\nparameters: {a: 1}\n", 1, "must be a number"),
    ("scheduler: {engine: optuna}\nparameters: {a: 1}\n", 1, "only wandb"),
    ("description: 5\nparameters: {a: 1}\n", 1, "must be a string"),
    ("parameters:\n  a.b: {value: 1}\n  a:\n    parameters:\n      b: {value: 2}\n", 5,
     "given twice"),
])
def test_what_wandb_refuses_is_refused_with_file_and_line(tmp_path: Path, text: str, line: int,
                                                        words: str) -> None:
    error = refusal(tmp_path, text)
    assert error.line == line, str(error)
    assert words in str(error)


def test_yaml_12_numbers_everywhere(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
method: random
run_cap: 1E1
parameters:
  lr: {distribution: log_uniform_values, min: 1e-5, max: 1E-1}
  w: {values: [.5, -1e3, 1e-4, '1e-4', 010, 0x10]}
resources: {cpus: .5}
""")
    assert spec.run_cap == 10 and spec.resources.cpus == 0.5
    assert (spec.parameters[0].min, spec.parameters[0].max) == (1e-5, 0.1)
    assert spec.parameters[1].values == (0.5, -1000.0, 1e-4, "1e-4", 10, 16)


def test_yaml_errors_keep_their_line_after_numbers(tmp_path: Path) -> None:
    error = refusal(tmp_path, "method: random\nrun_cap: 2\nparameters:\n"
                    "  lr: {min: 1e-1, max: 1e-5}\n")
    assert error.line == 4


def test_yes_no_on_off_are_booleans_with_a_warning(tmp_path: Path) -> None:
    spec = load(tmp_path, "parameters:\n  flag: {values: [yes, 'no', off, true]}\n")
    assert spec.parameters[0].values == (True, "no", False, True)
    assert any("line 2: yes is read as the boolean True" in w for w in spec.warnings)
    assert any("off is read as the boolean False" in w for w in spec.warnings)


@pytest.mark.parametrize("name", ["..", "../x", "/etc", "a/../../b", ".", "", "My Sweep",
                                  "ünï", "a\\b", "-x", ".hidden", "x" * 300])
def test_any_sweep_name_gets_a_safe_folder_inside_the_results_root(tmp_path: Path,
                                                                   name: str) -> None:
    from launcher.store import RunDir

    folder = folder_name(name)
    assert folder not in ("", ".", "..") and "/" not in folder and "\\" not in folder
    assert not folder.startswith((".", "-"))
    run = RunDir.create(tmp_path / "results", folder, "20260101-000000-abcd")
    assert run.path.resolve().is_relative_to((tmp_path / "results").resolve())
    assert run.path.parent.parent == tmp_path / "results"


def test_safe_names_are_their_own_folder_and_others_never_collide() -> None:
    assert folder_name("sweep-1.v2_x") == "sweep-1.v2_x"
    assert folder_name("My Sweep") != folder_name("My-Sweep")
    assert folder_name("My Sweep").startswith("My-Sweep-")


def test_run_folder_refuses_a_name_outside_the_root(tmp_path: Path) -> None:
    from launcher.errors import RunError
    from launcher.store import RunDir

    for bad in ("..", "../x", ""):
        with pytest.raises(RunError):
            RunDir.create(tmp_path, bad, "20260101-000000-abcd")


def test_dotted_names_stay_one_key_beside_nested_groups(tmp_path: Path) -> None:
    plan = expand(load(tmp_path, """\
parameters:
  a.b: {value: 1}
  m:
    parameters:
      h: {value: 2}
      x.y: {value: 3}
"""))
    trial = plan.trials[0]
    assert trial.nested_params() == {"a.b": 1, "m": {"h": 2, "x.y": 3}}
    assert [n for n, _ in trial.params] == ["a.b", "m.h", "m.x.y"]
    from launcher.trial import pluck
    nested = trial.nested_params()
    assert [pluck(nested, n) for n in ("a.b", "m.h", "m.x.y")] == [1, 2, 3]
