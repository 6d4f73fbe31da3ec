"""Adapters that let pymoo's genetic algorithms evolve canonical genomes of a space."""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.ux import UniformCrossover

from linas.space import SearchSpace


class Canonicalize(Repair):
    """Keeps offspring canonical, so duplicate elimination sees one genome per network."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        return self.space.canonicalize(np.round(X).astype(np.int64))


class ChoiceMutation(Mutation):
    """Resets each variable to a uniformly drawn choice with probability ``1 / n_var``.

    Choices are categories (kernel sizes, head counts), so a random reset suits them
    better than polynomial mutation of their indices.
    """

    def __init__(self, n_choices: np.ndarray) -> None:
        super().__init__(prob=1.0, prob_var=None)
        self.n_choices = np.asarray(n_choices)

    def _do(self, problem, X, random_state=None, **kwargs):
        X = np.array(X, dtype=np.int64)
        rate = 1.0 / X.shape[1]
        mask = random_state.random(X.shape) < rate
        draws = random_state.integers(0, self.n_choices, size=X.shape)
        X[mask] = draws[mask]
        return X


def genome_problem(space: SearchSpace, n_obj: int, n_constraints: int = 0, evaluate=None) -> Problem:
    """A pymoo problem over the space's genomes; ``evaluate(X) -> F`` when pymoo evaluates."""
    xu = space.n_choices - 1

    class _GenomeProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(space), n_obj=n_obj, n_ieq_constr=n_constraints, xl=np.zeros(len(space)),
                             xu=xu, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = evaluate(np.asarray(X, dtype=np.int64))

    return _GenomeProblem()


def nsga2_operators(space: SearchSpace, eliminate_duplicates: bool = True) -> dict:
    """Uniform crossover, random-reset mutation and canonicalizing repair for NSGA2(...)."""
    return dict(crossover=UniformCrossover(), mutation=ChoiceMutation(space.n_choices),
                repair=Canonicalize(space), eliminate_duplicates=eliminate_duplicates)
