"""Shared fixtures: small spaces, the synthetic evaluator, and an experiment config writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from linas.evaluator import make_evaluator
from linas.space import Condition, SearchSpace, Variable
from linas.spaces import get_space

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def toy_space() -> SearchSpace:
    """Two stages of up to three blocks; block 2 of a stage is used only at depth 3."""
    v = [Variable("d0", (2, 3)), Variable("d1", (2, 3))]
    for s in range(2):
        for j in range(3):
            cond = Condition(f"d{s}", 3) if j == 2 else None
            v.append(Variable(f"k{s}{j}", (3, 5, 7), cond))
    return SearchSpace("toy", v)


@pytest.fixture(scope="session")
def mbv3_space() -> SearchSpace:
    return get_space("ofa_mbv3")


@pytest.fixture(scope="session")
def synthetic(mbv3_space):
    return make_evaluator("synthetic_mbv3", mbv3_space, {"noise": 0.1})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def synthetic_config(tmp_path: Path, **overrides) -> dict:
    """A small synthetic experiment, written to ``tmp_path/exp.yaml``."""
    config = {
        "name": "test",
        "space": {"name": "ofa_mbv3"},
        "evaluator": {"name": "synthetic_mbv3", "options": {"noise": 0.1}},
        "objectives": [{"name": "top1", "bounds": [60, 80]}, {"name": "latency", "bounds": [10, 160]}],
        "strategies": [{"name": "linas", "options": {"population": 20, "inner_evaluations": 1000}}],
        "seeds": [0],
        "budget": 60,
        "output": str(tmp_path / "runs"),
    }
    config.update(overrides)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    return config
