"""OFA's evolution finder: one constraint, parents by the first objective behind feasibility."""

from __future__ import annotations

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import Constraint, Objective
from linas.space import SearchSpace, Variable
from linas.spec import Problem
from linas.strategies import make_strategy


def _problem(space, constraints=(Constraint("f2", max=0.5),)):
    objectives = (Objective("f1", "max", bounds=(0.0, 1.0)), Objective("f2", "min", bounds=(0.0, 1.0)))
    return Problem(space, objectives, constraints=constraints)


@pytest.mark.parametrize("constraints", [(), (Constraint("f2", max=0.5), Constraint("f1", min=0.1))])
def test_exactly_one_constraint(toy_space, constraints):
    with pytest.raises(ConfigError, match="exactly one constraint; the experiment has"):
        make_strategy("ofa_evolution", _problem(toy_space, constraints), 0)


def test_parents_are_the_best_feasible_by_the_first_objective(toy_space):
    s = make_strategy("ofa_evolution", _problem(toy_space), 0, {"population": 8})  # 2 parents
    g = s.ask()
    assert len(g) == 8
    F = np.column_stack([-np.array([0.9, 0.5, 0.8, 0.7, 0.95, 0.1, np.nan, 0.6]), np.zeros(8)])
    G = np.array([[-0.1], [-0.2], [-0.1], [0.3], [0.1], [-0.5], [np.nan], [-0.4]])
    s.tell(g, F, G)
    # Feasible: 0 (0.9), 1 (0.5), 2 (0.8), 5 (0.1), 7 (0.6): the two best are 0 and 2; the
    # infeasible 4 (0.95) ranks behind them however good its objective.
    assert list(s.parents()) == [0, 2]
    s2 = make_strategy("ofa_evolution", _problem(toy_space), 0, {"population": 8, "parent_ratio": 1.0})
    s2.tell(g, F, G)
    assert list(s2.parents()) == [0, 2, 7, 1, 5, 4, 3]  # then infeasible by violation; failures never


def test_children_are_new_mutations_and_crossovers_of_parents(toy_space):
    s = make_strategy("ofa_evolution", _problem(toy_space), 0, {"population": 8, "mutation_probability": 0.3})
    g = s.ask()
    s.tell(g, np.column_stack([-np.linspace(0, 1, 8), np.zeros(8)]), -np.ones((8, 1)))
    children = s.ask()
    keys = toy_space.keys(children)
    assert len(set(keys)) == 8 and not set(keys) & s.known


def test_resolution_has_its_own_mutation_probability():
    space = SearchSpace("r", [Variable("ks", (3, 5, 7)), Variable("resolution", (160, 176, 192, 208, 224))])
    problem = Problem(space, (Objective("top1", "max", bounds=(60, 80)),), constraints=(Constraint("top1", min=0),))
    s = make_strategy("ofa_evolution", problem, 0, {"mutation_probability": 0.0, "resolution_mutation_probability": 1.0})
    g = np.zeros((2000, 2), dtype=np.int64)
    changed = s.mutate(g) != g
    assert not changed[:, 0].any()
    assert abs(changed[:, 1].mean() - 4 / 5) < 0.05  # redrawn uniformly, sometimes to the same
