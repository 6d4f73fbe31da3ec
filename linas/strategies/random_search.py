"""Uniform random search: the baseline every comparison needs."""

from __future__ import annotations

import numpy as np

from linas.spec import Problem
from linas.strategies._batch import RngState
from linas.strategies.base import Strategy, initial_population, strategies


@strategies.register("random")
class RandomSearch(RngState, Strategy):
    """Batches of ``population`` distinct networks never asked before, drawn uniformly per variable.

    The first batch is the shared initial population.
    """

    def __init__(self, problem: Problem, seed: int, population: int = 50) -> None:
        super().__init__(problem, seed, population)
        self._rng = np.random.default_rng([seed, 1])

    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        return self.space.sample_unique(self._rng, self.population, exclude=self.known)
