"""Sweep files: what is accepted, and every bad input refused with file:line, exit 2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from launcher.errors import SweepError, UsageError
from launcher.overrides import Overrides
from launcher.spec import load_sweep


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str, **overrides: object) -> SweepError:
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as info:
        load_sweep(path, Overrides(**overrides))  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    return info.value


WANDB_GRID = """\
program: train.py
method: grid
metric:
  name: val_loss
  goal: minimize
parameters:
  lr:
    values: [0.1, 0.01, 0.001]
  optimizer:
    value: adam
  model:
    parameters:
      hidden: {values: [16, 32]}
      dropout: {value: 0.1}
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args}
project: my-project
entity: me
"""


def test_wandb_grid_file_is_accepted_with_warnings_for_service_keys(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, WANDB_GRID))
    assert spec.name == "sweep"
    assert spec.method == "grid"
    assert spec.metric is not None and spec.metric.goal == "minimize"
    assert [p.name for p in spec.parameters] == ["lr", "optimizer", "model.hidden",
                                                 "model.dropout"]
    assert spec.configurations() == 6
    assert any("project" in w for w in spec.warnings)
    assert any("entity" in w for w in spec.warnings)


def test_defaults_of_launcher_keys(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, "parameters: {x: {value: 1}}\n"))
    assert spec.replicas == 1 and spec.seed == 0 and spec.seed_mode == "distinct"
    assert [h.url for h in spec.hosts] == ["local"]
    assert spec.backend == "docker" and spec.network == "none" and spec.outputs is True
    assert spec.resources.cpus == 1 and spec.resources.memory == 2 * 1024**3
    assert spec.resources.pids == 512 and spec.stop_grace == 10.0
    assert spec.results == "results" and spec.timeout is None


def test_wandb_inference_of_distributions(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """\
method: random
run_cap: 5
parameters:
  a: {values: [1, 2]}
  b: {min: 1, max: 5}
  c: {min: 0.1, max: 0.5}
  d: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  e: {distribution: normal}
  f: {distribution: q_beta, a: 2, b: 3, q: 0.1}
"""))
    kinds = {p.name: p.kind for p in spec.parameters}
    assert kinds == {"a": "categorical", "b": "int_uniform", "c": "uniform",
                     "d": "log_uniform_values", "e": "normal", "f": "q_beta"}


def test_durations_and_memory_sizes(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """\
parameters: {x: {value: 1}}
timeout: 90s
deadline: 2h
stop_grace: 1m30s
resources: {cpus: 0.5, memory: 512m, pids: 64}
"""))
    assert (spec.timeout, spec.deadline, spec.stop_grace) == (90.0, 7200.0, 90.0)
    assert spec.resources.memory == 512 * 1024**2 and spec.resources.cpus == 0.5


def test_overrides_take_precedence_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, WANDB_GRID + "replicas: 3\nseed: 5\n")
    spec = load_sweep(path, Overrides(replicas=7, seed=1, sets=("resources.cpus=2",
                                                                "parameters.lr=[0.5]"),
                                      hosts=("tcp://127.0.0.1:2376,slots=4,name=a", "local")))
    assert spec.replicas == 7 and spec.seed == 1 and spec.resources.cpus == 2
    assert spec.parameters[0].values == (0.5,)
    assert [(h.url, h.name, h.slots) for h in spec.hosts] == [
        ("tcp://127.0.0.1:2376", "a", 4), ("local", "local", None)]


def test_hosts_file_replaces_the_file_hosts(tmp_path: Path) -> None:
    hosts = write(tmp_path, "- {url: 'ssh://root@10.0.0.5', slots: 2}\n- unix:///run/h2/docker.sock\n",
                  "hosts.yaml")
    spec = load_sweep(write(tmp_path, "parameters: {x: 1}\n"), Overrides(hosts_file=str(hosts)))
    assert [(h.name, h.slots) for h in spec.hosts] == [("10.0.0.5", 2), ("h2", None)]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("method: grid\nparameters:\n  lr: {values: [1, 2]}\nreplica: 3\n", 4,
     "unknown key 'replica' (did you mean 'replicas'?)"),
    ("parameters:\n  lr:\n    valuez: [1]\n", 3, "unknown key 'valuez' (did you mean"),
    ("parameters:\n  lr: {values: []}\n", 2, "must not be empty"),
    ("method: random\nrun_cap: 3\nparameters:\n  lr: {min: 0.5, max: 0.1}\n", 4,
     "must be less than max"),
    ("method: random\nrun_cap: 3\nparameters:\n  lr: {distribution: uniform, max: 1.0}\n", 4,
     "needs 'min'"),
    ("parameters:\n  lr: {values: [1, 2], probabilities: [0.5]}\n", 2, "one per value"),
    ("parameters:\n  lr: {values: [1, 2], probabilities: [0.5, 0.6]}\n", 2, "sum to 1"),
    ("replicas: 0\nparameters: {x: 1}\n", 1, "at least 1"),
    ("replicas: -2\nparameters: {x: 1}\n", 1, "at least 1"),
    ("parameters: {x: 1}\nhosts:\n  - {url: local, slots: 0}\n", 3, "at least 1"),
    ("parameters: {x: 1}\ntimeout: 0\n", 2, "greater than 0"),
    ("parameters: {x: 1}\ntimeout: -5s\n", 2, "duration"),
    ("parameters: {x: 1}\ntimeout: soon\n", 2, "duration"),
    ("parameters: {x: 1}\nreplicas: many\n", 2, "must be an integer"),
    ("method: bayes\nparameters: {x: 1}\n", 1, "needs run_cap"),
    ("method: random\nparameters: {x: 1}\n", 1, "needs run_cap"),
    ("parameters:\n  lr: {distribution: uniform, min: 0, max: 1}\n", 2,
     "cannot enumerate the continuous distribution uniform"),
    ("parameters: {x: 1}\ncommand: python train.py ${args}\n", 2, "list of argv items"),
    ("parameters: {x: 1}\ncommand: [python3, '--lr=${args}']\n", 2, "whole argv item"),
    ("parameters: {x: 1}\ncommand: [python3, '${argz}']\n", 2, "unknown macro"),
    ("parameters: {x: 1}\nnetwork: host\n", 2, "must be one of none, bridge"),
    ("parameters: {x: 1}\nresources: {memory: 1k}\n", 2, "at least 6m"),
    ("parameters: {x: 1}\nhosts: [ftp://x]\n", 2, "host URL"),
    ("name: 3\nparameters: {x: 1}\n", 1, "must be a string"),
    ("parameters: {x: 1}\nparameters: {y: 2}\n", 2, "duplicate key 'parameters'"),
    ("parameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}\n", 2, "min > 0"),
    ("parameters: {x: 1}\nenv: {LAUNCH_SEED: 3}\n", 2, "set by the launcher"),
])
def test_bad_input_is_refused_with_file_and_line(tmp_path: Path, text: str, line: int,
                                                  words: str) -> None:
    error = refused(tmp_path, text)
    assert error.line == line, str(error)
    assert words in str(error)
    assert str(error).startswith(f"{tmp_path / 'sweep.yaml'}:{line}: ")


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    error = refused(tmp_path, "parameters:\n  lr: {values: [1, 2}\n")
    assert error.line == 2 and "column" in str(error)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert "must be a mapping" in str(refused(tmp_path, text))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert "empty" in str(refused(tmp_path, "# nothing\n"))


def test_grid_times_replicas_above_a_million_is_refused_before_expansion(tmp_path: Path) -> None:
    text = "parameters:\n  a: {min: 1, max: 1000}\n  b: {min: 1, max: 1000}\nreplicas: 2\n"
    started = time.perf_counter()
    error = refused(tmp_path, text)
    assert "2,000,000 trials" in str(error) and "limit of 1,000,000" in str(error)
    assert time.perf_counter() - started < 1.0


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
parameters: {x: {values: *g}}
"""


def test_anchors_and_aliases_are_refused_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    error = refused(tmp_path, BILLION_LAUGHS)
    assert time.perf_counter() - started < 0.5
    assert "anchor &a is not allowed" in str(error) and error.line == 1


@pytest.mark.parametrize("text", [
    "parameters: {x: !!python/object/apply:os.system ['touch /tmp/pwned']}\n",
    "parameters: {x: !custom 1}\n",
    "parameters: !!python/name:os.system {}\n",
])
def test_custom_and_python_tags_are_refused(tmp_path: Path, text: str) -> None:
    assert "is not allowed in a sweep file" in str(refused(tmp_path, text))
    assert not Path("/tmp/pwned").exists()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="no such file"):
        load_sweep(tmp_path / "nope.yaml")
    with pytest.raises(SweepError, match="is a directory"):
        load_sweep(tmp_path)


@pytest.mark.parametrize(("item", "words"), [
    ("resources", "expected KEY.PATH=VALUE"),
    ("=3", "expected KEY.PATH=VALUE"),
    ("resources..cpus=2", "bad key path"),
    ("replicas.x=3", "replicas is a value, not a section"),
    ("parameters.lrr=0.1", "no parameter 'lrr' (did you mean 'lr'?)"),
    ("hosts.5.slots=2", "not an index"),
])
def test_bad_set_paths_are_usage_errors(tmp_path: Path, item: str, words: str) -> None:
    path = write(tmp_path, "replicas: 2\nparameters: {lr: {values: [1]}}\nhosts: [local]\n")
    with pytest.raises(UsageError) as info:
        load_sweep(path, Overrides(sets=(item,)))
    assert words in str(info.value) and info.value.exit_code == 2


def test_set_of_an_unknown_top_level_key_names_the_option(tmp_path: Path) -> None:
    error = refused(tmp_path, "parameters: {x: 1}\n", sets=("resources.cpu=2",))
    assert str(error).startswith("--set resources.cpu: unknown key 'cpu'")
    assert "did you mean 'cpus'" in str(error)


def test_bad_replicas_option_names_the_option(tmp_path: Path) -> None:
    assert str(refused(tmp_path, "parameters: {x: 1}\n", replicas=0)).startswith("--replicas:")


def test_bad_host_option(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {x: 1}\n")
    with pytest.raises(UsageError, match="unknown option 'slot=3'"):
        load_sweep(path, Overrides(hosts=("local,slot=3",)))
