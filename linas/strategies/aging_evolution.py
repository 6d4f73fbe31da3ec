"""Aging (regularized) evolution made multi-objective.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019 (AmoebaNet): a population of ``population_size`` living networks;
each child is a mutation of the winner of a tournament among ``sample_size`` members
drawn at random, and when a child joins, the *oldest* member dies (not the worst), so
no network lives forever however good it looked.

Multi-objective here: the tournament is won by the sampled member of lowest
non-dominated rank in the living population (constraint domination: feasible before
infeasible), ties broken by crowding distance within its front (most isolated wins) or,
with ``selection: hv_contribution``, by its exclusive hypervolume contribution to its
front in normalized space.

Batched for linas's ask/tell loop: each ask returns ``population`` children, all bred
from the population as it stood after the last tell (asynchronous regularized evolution
with ``population`` workers); they join, in order, when told, and the oldest die.
The first batch is the shared initial population, which starts the living population.
Failed evaluations never join. Children are distinct networks never told before (a
mutation that repeats one is drawn again; random networks fill what mutation cannot).

The living population is the last ``population_size`` successful networks told, so the
state to save is the random generator alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from linas.mo import crowding_distance, hv_contributions, pareto_ranks
from linas.spec import Problem
from linas.strategies._batch import RngState, fresh_batch
from linas.strategies.base import Strategy, StrategyOptions, initial_population, strategies


@strategies.register("aging_evolution")
class AgingEvolution(RngState, Strategy):
    """Regularized evolution (Real et al., 2019) with a multi-objective tournament.

    Options: ``population`` (children per batch, and the initial population; default 50),
    ``population_size`` (living networks, default 100 as in Real et al.), ``sample_size``
    (tournament size, default 25 as in Real et al.), ``mutation_rate`` (probability that
    each variable a network uses is redrawn; default ``1 / n_variables``; a child always
    differs from its parent), ``selection`` (``crowding`` or ``hv_contribution``: what
    breaks ties of rank in the tournament).
    """

    quick_options = {"population_size": 20, "sample_size": 5}

    class Options(StrategyOptions):
        population_size: int = Field(100, ge=2, description="living networks (the oldest dies)")
        sample_size: int = Field(25, ge=1, description="tournament size")
        mutation_rate: float | None = Field(None, ge=0.0, le=1.0, description="default 1 / n_variables")
        selection: Literal["crowding", "hv_contribution"] = "crowding"

        @model_validator(mode="after")
        def _consistent(self):
            if self.sample_size > self.population_size:
                raise ValueError("sample_size must be at most population_size")
            return self

    def __init__(self, problem: Problem, seed: int, population: int = 50, population_size: int = 100,
                 sample_size: int = 25, mutation_rate: float | None = None,
                 selection: Literal["crowding", "hv_contribution"] = "crowding") -> None:
        super().__init__(problem, seed, population)
        self.Options(population=population, population_size=population_size, sample_size=sample_size,
                     mutation_rate=mutation_rate, selection=selection)
        self.population_size, self.sample_size = population_size, sample_size
        self.mutation_rate, self.selection = mutation_rate, selection
        self._rng = np.random.default_rng([seed, 3])

    # ------------------------------------------------------------------ population
    def alive(self) -> np.ndarray:
        """Indices (into everything told) of the living population, oldest first."""
        ok = np.flatnonzero(~np.isnan(self.F).any(axis=1))
        return ok[-self.population_size:]

    def fitness(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-dominated rank (constraint domination) of ``members`` within them, and the
        tie-break score within each front (larger is better)."""
        F, G = self.F[members], self.G[members]
        ranks = pareto_ranks(F, G)
        score = np.zeros(len(members))
        for r in np.unique(ranks):
            front = np.flatnonzero(ranks == r)
            if self.selection == "hv_contribution":
                score[front] = hv_contributions(self.problem.normalize(F[front]), self.problem.reference_point)
            else:
                score[front] = crowding_distance(F[front])
        return ranks, score

    def tournament(self, sample: np.ndarray, ranks: np.ndarray, score: np.ndarray) -> int:
        """The winner among ``sample`` (positions in the living population, as ``ranks``
        and ``score`` are): lowest rank, then highest score, then the first drawn."""
        order = np.lexsort((np.arange(len(sample)), -score[sample], ranks[sample]))
        return int(sample[order[0]])

    # ------------------------------------------------------------------ ask
    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        members = self.alive()
        if len(members) == 0:  # everything failed so far
            return self.space.sample_unique(self._rng, self.population, exclude=self.known)
        ranks, score = self.fitness(members)
        k = min(self.sample_size, len(members))

        def children(n: int) -> np.ndarray:
            parents = np.array([self.tournament(self._rng.choice(len(members), k, replace=False), ranks, score)
                                for _ in range(n)])
            return self.space.mutate(self.genomes[members[parents]], self._rng, self.mutation_rate)

        return fresh_batch(self.space, self._rng, self.population, set(self.known), children)
