"""NSGA-II on real validations (pymoo, driven with ask/tell)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator as PymooEvaluator
from pymoo.problems.static import StaticProblem

from linas.spec import Problem
from linas.strategies._pymoo import genome_problem, nsga2_operators
from linas.strategies.base import Strategy, StrategyOptions, initial_population, strategies


@strategies.register("nsga2")
class NSGA2Search(Strategy):
    """Each generation of ``population`` offspring is validated for real.

    Constraints of the problem are pymoo inequality constraints (constraint domination);
    a failed evaluation violates one more, so NSGA-II ranks it behind every network
    that was measured. Its pymoo population is rebuilt on resume by replaying its asks
    (cheap: nothing is validated again).

    ``operators``: ``"sbx"`` (default), the paper's simulated binary crossover and
    polynomial mutation on the choice indices with rounding, as pymoo and DyNAS-T use
    them; ``"choice"``, uniform crossover and random-reset mutation
    (:func:`~linas.strategies._pymoo.nsga2_operators`). results/strategies/nsga2_operators.md
    compares them.
    """

    class Options(StrategyOptions):
        operators: Literal["choice", "sbx"] = Field("sbx", description="variation operators")

    def __init__(self, problem: Problem, seed: int, population: int = 50,
                 operators: Literal["choice", "sbx"] = "sbx") -> None:
        super().__init__(problem, seed, population)
        self.operators = operators
        self._problem = genome_problem(self.space, self.n_objectives, n_constraints=problem.n_constraints + 1)
        self._algorithm = NSGA2(pop_size=population, sampling=initial_population(self.space, seed, population),
                                seed=seed, **nsga2_operators(self.space, operators=operators))
        self._algorithm.setup(self._problem, termination=("n_gen", 10**9))
        self._pending = None

    def ask(self) -> np.ndarray:
        self._pending = self._algorithm.ask()
        return np.asarray(self._pending.get("X"), dtype=np.int64)

    def tell(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None = None) -> None:
        super().tell(genomes, F, G)
        F = np.asarray(F, dtype=float)
        G = self._constraint_rows(G, len(F))
        failed = np.isnan(F).any(axis=1) | np.isnan(G).any(axis=1)
        G_all = np.hstack([np.where(failed[:, None], 0.0, G), failed.astype(float)[:, None]])
        static = StaticProblem(self._problem, F=np.where(failed[:, None], 0.0, F), G=G_all)
        PymooEvaluator().eval(static, self._pending)
        self._algorithm.tell(infills=self._pending)
