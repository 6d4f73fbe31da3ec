"""OFA's constrained evolutionary search, as a single-constraint baseline.

Cai, Gan, Wang, Zhang and Han, "Once-for-All: Train One Network and Specialize it for
Efficient Deployment", ICLR 2020; the finder of its code
(``ofa/nas/search_algorithm/evolution.py``, ``EvolutionFinder``), re-written here:

- a population of ``population`` networks (OFA: 100);
- each generation keeps the best ``parent_ratio`` of it (OFA: 0.25) as parents, ranked by
  the first objective (OFA: predicted top-1); since parents survive into the next
  generation, they are the best networks ever seen;
- ``mutation_ratio`` (0.5) of the ``population`` children are mutations of a random
  parent: every variable is redrawn uniformly from its choices (possibly the same one)
  with probability ``mutation_probability`` (0.1), the input resolution with
  ``resolution_mutation_probability`` (0.5); the rest are uniform crossovers of two
  random parents, each variable from either.

It optimizes the **first** objective (turned to minimization as strategies see it;
top-1 in OFA) under the problem's single constraint (latency or MACs in OFA); a problem
with no or several constraints is refused.

The one difference from OFA: OFA checks a child against the constraint with its
efficiency predictor *before* asking the accuracy predictor, and draws again until the
child is feasible, so infeasible networks cost nothing. In linas every proposal is
validated (the constrained metric is a measurement like the others), so infeasible
children are measured, count toward the budget and rank behind every feasible network
(by how far they violate the constraint). The first generation is the shared initial
population (random networks, feasible or not), not OFA's random *feasible* ones.
Children are also distinct networks never told before (OFA may propose repeats): a
mutation or crossover that repeats one is drawn again, and random networks fill what
they cannot.

The parents follow from what was told, so the state saved is the random generator alone.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from linas.errors import ConfigError
from linas.mo import total_violation
from linas.spec import Problem
from linas.strategies._batch import RngState, fresh_batch
from linas.strategies.base import Strategy, StrategyOptions, initial_population, strategies


@strategies.register("ofa_evolution")
class OFAEvolution(RngState, Strategy):
    """OFA's evolution finder (Cai et al., ICLR 2020): the first objective under one constraint.

    Options: ``population`` (default 100), ``parent_ratio`` (0.25), ``mutation_ratio``
    (0.5: the share of children made by mutation, the rest by crossover),
    ``mutation_probability`` (0.1 per variable), ``resolution_mutation_probability``
    (0.5, for the variable named ``resolution_variable``, default ``resolution``, when the
    space has one).
    """

    #: The contract tests give strategies that need a constraint one.
    requires_constraints = 1

    class Options(StrategyOptions):
        population: int = Field(100, ge=2, description="networks per generation (the initial population too)")
        parent_ratio: float = Field(0.25, gt=0, le=1)
        mutation_ratio: float = Field(0.5, ge=0, le=1)
        mutation_probability: float = Field(0.1, ge=0, le=1)
        resolution_mutation_probability: float = Field(0.5, ge=0, le=1)
        resolution_variable: str = "resolution"

    def __init__(self, problem: Problem, seed: int, population: int = 100, parent_ratio: float = 0.25,
                 mutation_ratio: float = 0.5, mutation_probability: float = 0.1,
                 resolution_mutation_probability: float = 0.5, resolution_variable: str = "resolution") -> None:
        if problem.n_constraints != 1:
            raise ConfigError(f"strategy 'ofa_evolution' maximizes the first objective under exactly one constraint; "
                              f"the experiment has {problem.n_constraints} (set constraints: [{{metric: ..., max: ...}}])")
        super().__init__(problem, seed, population)
        self.Options(population=population, parent_ratio=parent_ratio, mutation_ratio=mutation_ratio,
                     mutation_probability=mutation_probability,
                     resolution_mutation_probability=resolution_mutation_probability,
                     resolution_variable=resolution_variable)
        self.n_parents = max(1, int(round(parent_ratio * population)))
        self.n_mutations = int(round(mutation_ratio * population))
        rates = np.full(len(self.space), float(mutation_probability))
        if resolution_variable in self.space.names:
            rates[self.space.names.index(resolution_variable)] = resolution_mutation_probability
        self._rates = rates
        self._rng = np.random.default_rng([seed, 5])

    def parents(self) -> np.ndarray:
        """Indices (into everything told) of the best ``n_parents`` networks: feasible ones by
        the first objective, then infeasible ones by total violation; failures never."""
        F0 = self.F[:, 0]
        ok = np.flatnonzero(~np.isnan(self.F).any(axis=1) & ~np.isnan(self.G).any(axis=1))
        cv = total_violation(self.G[ok], len(ok))
        order = np.lexsort((F0[ok], cv))  # violation first (0 when feasible), then the objective
        return ok[order[: self.n_parents]]

    def mutate(self, genomes: np.ndarray) -> np.ndarray:
        """OFA's mutation: each variable redrawn uniformly (possibly unchanged) with its probability."""
        g = np.array(genomes, dtype=np.int64)
        redraw = self._rng.random(g.shape) < self._rates
        draws = self._rng.integers(0, self.space.n_choices, size=g.shape)
        g[redraw] = draws[redraw]
        return self.space.canonicalize(g)

    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        parents = self.parents()
        if len(parents) == 0:  # everything failed so far
            return self.space.sample_unique(self._rng, self.population, exclude=self.known)
        P = self.genomes[parents]
        taken = set(self.known)

        def mutants(n: int) -> np.ndarray:
            return self.mutate(P[self._rng.integers(len(P), size=n)])

        def crosses(n: int) -> np.ndarray:
            a, b = P[self._rng.integers(len(P), size=n)], P[self._rng.integers(len(P), size=n)]
            return self.space.crossover(a, b, self._rng)

        first = fresh_batch(self.space, self._rng, self.n_mutations, taken, mutants, fill=False)
        return np.vstack([first, fresh_batch(self.space, self._rng, self.population - len(first), taken, crosses)])
