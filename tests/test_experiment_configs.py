"""Every config shipped in experiments/configs is valid for the command it is written for.

Parsing only: the checkpoints and data they name need not be here. Experiment configs
go through the experiment schema, their space and strategy names through the registries
and their evaluator options through the evaluator's own option model or signature;
training and lookup-table configs through their supernet's schema.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest

from linas.config import load_experiment
from linas.config_io import load_yaml, parse
from linas.evaluator import evaluators
from linas.objectives import Constraint
from linas.spaces import get_space
from linas.spec import Problem
from linas.strategies import make_strategy

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
ALL = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def kind(path: Path) -> str:
    data = load_yaml(path)
    if "strategies" in data:
        return "experiment"
    return "train" if "train" in data else "lut"


def test_the_four_experiments_and_their_surrogates_are_there():
    for name in ("imagenet_ofa_mbv3", "tiny_imagenet_mbv3", "wmt14_hat", "multi30k_hat",
                 "surrogate_tiny_imagenet_mbv3", "surrogate_multi30k_hat"):
        assert f"{name}.yaml" in ALL


@pytest.mark.parametrize("name", [n for n in ALL if kind(CONFIGS / n) == "experiment"])
def test_experiment_configs_are_valid(name):
    config = load_experiment(CONFIGS / name)
    space = get_space(config.space.name, **config.space.options)
    constraints = tuple(Constraint(c.metric, min=c.min, max=c.max) for c in config.constraints)
    # A stand-in for the feature source (its checkpoint and data need not be here): strategies see its metrics.
    features = SimpleNamespace(names=tuple(config.features.metrics)) if config.features else None
    problem = Problem(space, Problem.simple(space, len(config.objectives)).objectives, constraints=constraints,
                      features=features)
    if config.features:
        evaluators.options(config.features.name, config.features.options, n_args=1)
        declared = {m.name for m in evaluators.get(config.features.name).metrics}
        assert set(config.features.metrics) <= declared, name
    for strategy in config.strategies:
        make_strategy(strategy.name, problem, 0, strategy.options)
    cls = evaluators.get(config.evaluator.name)
    options = dict(config.evaluator.options)
    if config.evaluator.name == "ofa_mbv3_supernet":
        from supernets.mobilenetv3.evaluator import SupernetEvaluatorOptions

        parse(SupernetEvaluatorOptions, options, where=name)
    else:
        inspect.signature(cls.__init__).bind(None, space, **options)  # unknown options raise TypeError
    if cls.metrics:  # declared on the class (a surrogate's depend on its options)
        assert {o.name for o in config.objectives} <= {m.name for m in cls.metrics}, name
    if config.name in ("tiny_imagenet_mbv3", "multi30k_hat"):  # the comparisons run here
        assert len(config.seeds) >= 5 and config.budget >= 300 and config.cache
        assert {s.name for s in config.strategies} == {"linas", "nsga2", "random"}


def schema(kind_: str, supernet: str):
    """The settings model of a training or lookup-table config."""
    if kind_ == "train":
        from supernets.mobilenetv3.trainer import TrainerConfig
        from supernets.transformer.trainer import HatTrainConfig

        return HatTrainConfig if supernet == "hat" else TrainerConfig
    from supernets.mobilenetv3.latency import LutSettings
    from supernets.transformer.latency import LutConfig

    return LutConfig if supernet == "hat" else LutSettings


@pytest.mark.parametrize("name", [n for n in ALL if kind(CONFIGS / n) != "experiment"])
def test_training_and_lookup_table_configs_are_valid(name):
    data = load_yaml(CONFIGS / name)
    parse(schema(kind(CONFIGS / name), data["supernet"]), data, where=name)
