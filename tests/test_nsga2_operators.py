"""NSGA-II's two operator sets: both keep offspring canonical and inside the space."""

from __future__ import annotations

import numpy as np
import pytest

from linas.strategies import make_strategy
from linas.strategies._pymoo import nsga2_operators
from linas.strategies.nsga2 import NSGA2Search
from linas.testing import two_objectives


@pytest.mark.parametrize("operators", ["sbx", "choice"])
def test_offspring_are_canonical_networks_of_the_space(mbv3_space, operators):
    s = make_strategy("nsga2", two_objectives(mbv3_space), 0, {"population": 20, "operators": operators})
    rng = np.random.default_rng(0)
    for _ in range(4):
        g = s.ask()
        assert ((g >= 0) & (g < mbv3_space.n_choices)).all()
        np.testing.assert_array_equal(g, mbv3_space.canonicalize(g))
        s.tell(g, rng.random((len(g), 2)))


def test_the_option_picks_the_operators(mbv3_space):
    sbx, choice = nsga2_operators(mbv3_space, operators="sbx"), nsga2_operators(mbv3_space, operators="choice")
    assert type(sbx["crossover"]).__name__ == "SBX" and type(sbx["mutation"]).__name__ == "PM"
    assert type(choice["mutation"]).__name__ == "ChoiceMutation"
    assert NSGA2Search.Options().operators == "sbx"  # the stronger one (results/strategies/nsga2_operators.md)
    with pytest.raises(ValueError, match="unknown operators"):
        nsga2_operators(mbv3_space, operators="bogus")
