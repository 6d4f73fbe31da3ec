"""Shared fixtures: small spaces and the synthetic evaluator (plain helpers are in helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from linas.evaluator import make_evaluator
from linas.space import Condition, SearchSpace, Variable
from linas.spaces import get_space


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
