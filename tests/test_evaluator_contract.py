"""The contract every registered evaluator fulfils: it measures exactly the metrics it
declares, as finite floats, and names itself.

Each evaluator is built as an experiment config in experiments/configs names it (the
first one, by file name, that can be built here); one that cannot be built without data
or a checkpoint this machine lacks is skipped with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from linas.config import load_experiment
from linas.config_io import load_yaml
from linas.errors import LinasError
from linas.evaluator import evaluators, make_evaluator
from linas.spaces import get_space

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
NAMES = evaluators.names()
#: Options that make an evaluator quick to build, over its config's (the contract is the same).
QUICK = {"surrogate": {"model": "extra_trees"}}


def configs_naming(name: str) -> list[Path]:
    out = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        data = load_yaml(path)
        if isinstance(data.get("evaluator"), dict) and data["evaluator"].get("name") == name:
            out.append(path)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_evaluator_has_an_experiment_config(name):
    assert configs_naming(name), f"no config in experiments/configs uses evaluator '{name}'"


@pytest.mark.parametrize("name", NAMES)
def test_an_evaluator_measures_exactly_what_it_declares(name, monkeypatch):
    monkeypatch.chdir(CONFIGS.parents[1])  # configs name their files relative to the repository
    reasons = []
    for path in configs_naming(name):
        config = load_experiment(path)
        space = get_space(config.space.name, **config.space.options)
        try:
            evaluator = make_evaluator(name, space, {**config.evaluator.options, **QUICK.get(name, {})})
        except (LinasError, OSError) as exc:
            reasons.append(f"{path.name}: {exc}")
            continue
        break
    else:
        pytest.skip("; ".join(reasons) or "no config")
    try:
        declared = [m.name for m in evaluator.metrics]
        assert declared and len(set(declared)) == len(declared)
        assert isinstance(evaluator.identity, str) and evaluator.identity
        genomes = space.sample(np.random.default_rng(0), 2)
        for i, outcome in evaluator.evaluate([space.to_config(g) for g in genomes]):
            assert outcome.ok, outcome.error
            assert sorted(outcome.metrics) == sorted(declared)
            assert all(type(v) is float and math.isfinite(v) for v in outcome.metrics.values())
        if evaluator.vectorized:  # a batch gives each network the numbers it gets alone, to the bit
            configs = [space.to_config(g) for g in space.sample(np.random.default_rng(1), 40)]
            batch = evaluator.evaluate_batch(configs)
            assert [o.metrics for o in batch] == [dict(evaluator.evaluate_one(c)) for c in configs]
    finally:
        evaluator.close()
