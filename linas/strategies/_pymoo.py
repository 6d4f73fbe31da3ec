"""Adapters that let pymoo's genetic algorithms evolve canonical genomes of a space."""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.selection.tournament import TournamentSelection

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
    """A pymoo problem over the space's genomes; ``evaluate(X) -> F`` (or ``(F, G)`` with
    constraints) when pymoo evaluates."""
    xu = space.n_choices - 1

    class _GenomeProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(space), n_obj=n_obj, n_ieq_constr=n_constraints, xl=np.zeros(len(space)),
                             xu=xu, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            result = evaluate(np.asarray(X, dtype=np.int64))
            if isinstance(result, tuple):  # objectives and constraints
                out["F"], out["G"] = result
            else:
                out["F"] = result

    return _GenomeProblem()


#: Variation operators of :func:`nsga2_operators`.
OPERATORS = ("choice", "sbx")


def nsga2_operators(space: SearchSpace, eliminate_duplicates: bool = True, operators: str = "choice") -> dict:
    """Variation operators and canonicalizing repair for NSGA2(...).

    ``"choice"``: uniform crossover and random-reset mutation (rate ``1 / n_var``), which
    treat the choices as categories. ``"sbx"``: the operators of Deb's NSGA-II as pymoo and
    DyNAS-T apply them to integer indices: simulated binary crossover (probability 0.9,
    eta 15) and polynomial mutation (eta 20, each variable with probability
    ``1 / n_var``) on the indices as reals, rounded to the nearest index; the children
    are then canonicalized.
    """
    if operators == "sbx":
        variation = dict(crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                         mutation=PM(eta=20, vtype=float, repair=RoundingRepair()))
    elif operators == "choice":
        variation = dict(crossover=UniformCrossover(), mutation=ChoiceMutation(space.n_choices))
    else:
        raise ValueError(f"unknown operators '{operators}'; known: {', '.join(OPERATORS)}")
    return dict(**variation, repair=Canonicalize(space), eliminate_duplicates=eliminate_duplicates)


def vectorized_binary_tournament(pop, P, algorithm, random_state=None, **kwargs):
    """pymoo's NSGA-II binary tournament (dominance, then crowding distance, then a coin
    flip), decided for all pairs at once; pymoo's loop decides when the problem has
    constraints."""
    if algorithm.problem.has_constraints():
        return binary_tournament(pop, P, algorithm, random_state=random_state, **kwargs)
    F, crowding = pop.get("F", "crowding")
    a, b = P[:, 0], P[:, 1]
    Fa, Fb = F[a], F[b]
    a_wins = (Fa <= Fb).all(axis=1) & (Fa < Fb).any(axis=1)
    b_wins = (Fb <= Fa).all(axis=1) & (Fb < Fa).any(axis=1)
    undecided = ~(a_wins | b_wins)
    ca, cb = crowding[a].astype(float), crowding[b].astype(float)
    a_wins |= undecided & (ca > cb)
    b_wins |= undecided & (cb > ca)
    coin = random_state.random(len(P)) < 0.5
    a_wins |= ~(a_wins | b_wins) & coin
    return np.where(a_wins, a, b)[:, None].astype(int, copy=False)


class FastNSGA2(NSGA2):
    """pymoo's NSGA-II with the per-individual Python loops of its tournament and of its
    optimum bookkeeping replaced by array operations; same selection rules, same survival.
    Used for the inner loop of LINAS, where pymoo's bookkeeping dominates the cost of the
    cheap predicted evaluations."""

    def __init__(self, **kwargs) -> None:
        super().__init__(selection=TournamentSelection(func_comp=vectorized_binary_tournament), **kwargs)

    def _set_optimum(self, **kwargs):
        if self.problem.has_constraints():
            super()._set_optimum(**kwargs)
        else:
            self.opt = self.pop[self.pop.get("rank") == 0]
