"""Trial ids of grid sweeps are pinned: W&B-compatibility work must never change them.

The ids below were computed by the launcher before random search changed to draws with
replacement (issue 11); a grid sweep planned today must give exactly the same ids.
"""

from __future__ import annotations

from launcher.overrides import Overrides
from launcher.plan import expand
from launcher.spec import build_spec
from launcher.yamlfile import parse_yaml

NESTED = """\
parameters:
  lr: {values: [0.1, 0.01, 0.001]}
  model:
    parameters:
      hidden: {values: [8, 16]}
  epochs: {value: 3}
replicas: 2
"""

INT_RANGE = """\
method: grid
seed: 7
parameters:
  n: {min: 1, max: 3}
  opt: {values: [adam, sgd]}
  flag: {values: [true, false]}
"""


def ids(text: str) -> list[tuple[str, str]]:
    plan = expand(build_spec(parse_yaml(text), Overrides()))
    return [(t.trial_id, t.config_id) for t in plan.trials][:6]


def test_grid_ids_with_a_nested_group_and_replicas_are_unchanged() -> None:
    assert ids(NESTED) == [
        ("60db0a78c895", "ddb2c05d6c"), ("73920767fcd5", "ddb2c05d6c"),
        ("2289d72b922b", "f78b363236"), ("93210310da30", "f78b363236"),
        ("89456c04c973", "0c961c2f36"), ("5f8363ed47bf", "0c961c2f36")]


def test_grid_ids_over_an_int_range_strings_and_booleans_are_unchanged() -> None:
    assert ids(INT_RANGE) == [
        ("ff0c83516018", "9687e7b414"), ("def3a6f14a91", "541237bfb9"),
        ("fb9d06d17aa0", "ce4e7d4b52"), ("b6579ddd83d1", "1a0b88a4a8"),
        ("45a5db82e75c", "11e3fc958e"), ("70c32b695df8", "c26144e072")]
