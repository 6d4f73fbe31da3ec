"""NSGA-II on real validations (pymoo, driven with ask/tell)."""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator as PymooEvaluator
from pymoo.problems.static import StaticProblem

from linas.space import SearchSpace
from linas.strategies._pymoo import genome_problem, nsga2_operators
from linas.strategies.base import Strategy, initial_population, strategies


@strategies.register("nsga2")
class NSGA2Search(Strategy):
    """Each generation of ``population`` offspring is validated for real.

    A failed evaluation is an infeasible individual (one violated constraint), so
    NSGA-II ranks it behind every network that was measured.
    """

    def __init__(self, space: SearchSpace, n_objectives: int, seed: int, population: int = 50) -> None:
        super().__init__(space, n_objectives, seed, population)
        self._problem = genome_problem(space, n_objectives, n_constraints=1)
        self._algorithm = NSGA2(pop_size=population, sampling=initial_population(space, seed, population),
                                seed=seed, **nsga2_operators(space))
        self._algorithm.setup(self._problem, termination=("n_gen", 10**9))
        self._pending = None

    def ask(self) -> np.ndarray:
        self._pending = self._algorithm.ask()
        return np.asarray(self._pending.get("X"), dtype=np.int64)

    def tell(self, genomes: np.ndarray, F: np.ndarray) -> None:
        super().tell(genomes, F)
        F = np.asarray(F, dtype=float)
        failed = np.isnan(F).any(axis=1)
        G = failed.astype(float)[:, None]
        static = StaticProblem(self._problem, F=np.where(failed[:, None], 0.0, F), G=G)
        PymooEvaluator().eval(static, self._pending)
        self._algorithm.tell(infills=self._pending)
