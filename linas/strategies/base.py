"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from linas.errors import ConfigError
from linas.registry import Registry
from linas.space import SearchSpace

strategies: Registry = Registry("strategy", packages=["linas.strategies"])


def initial_population(space: SearchSpace, seed: int, size: int) -> np.ndarray:
    """The first batch of every strategy: ``size`` distinct random networks.

    The same for every strategy given the same seed, so comparisons are paired.
    """
    return space.sample_unique(np.random.default_rng(seed), size)


class Strategy(ABC):
    """Proposes networks to validate and learns from their measured objectives.

    The loop calls ``ask()`` for a batch of canonical genomes, has them validated (or
    looks them up when already validated), then calls ``tell(genomes, F)`` with the
    objective values of the whole batch, in the same order: ``F`` has one row per
    genome, objectives turned to minimization, and NaN rows for failed evaluations.

    A strategy must be deterministic given its seed and what it was told: an
    interrupted run is resumed by replaying the asks against the archive.
    """

    def __init__(self, space: SearchSpace, n_objectives: int, seed: int, population: int = 50) -> None:
        if population < 2:
            raise ConfigError(f"population must be at least 2, got {population}")
        self.space = space
        self.n_objectives = n_objectives
        self.seed = seed
        self.population = population
        self.step = 0
        # Everything told so far: canonical genomes, their keys and objective rows.
        self.genomes = np.empty((0, len(space)), dtype=np.int64)
        self.F = np.empty((0, n_objectives))
        self.known: set[str] = set()
        #: Diagnostics a strategy reports (dicts with ``step`` and ``objective`` index); the
        #: runner stores and clears them after each ask and tell.
        self.diagnostics: list[dict] = []

    @abstractmethod
    def ask(self) -> np.ndarray:
        """The next batch of canonical genomes, shape ``(n, len(space))``."""

    def tell(self, genomes: np.ndarray, F: np.ndarray) -> None:
        new = []
        for i, k in enumerate(self.space.keys(genomes)):
            if k not in self.known:
                self.known.add(k)
                new.append(i)
        self.genomes = np.vstack([self.genomes, genomes[new]])
        self.F = np.vstack([self.F, np.asarray(F, dtype=float)[new]])
        self.step += 1

    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        """Catch up with evaluations the strategy did not ask for in this session.

        A resumed run replays its strategy against the archive; on another machine or
        with other library versions, floating point can make a model-based strategy
        propose other networks than it did when the archive was written. The runner then
        hands it the archived batches it was never told (``(genomes, F)`` per original
        step, as ``tell`` takes them), so that it goes on knowing everything validated.
        Returns False when the strategy's state cannot take them (the default); a
        strategy whose state is what it was told returns True after telling them.
        """
        return False

    def _tell_batches(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        self.diagnostics.clear()  # those of the ask that is discarded
        for genomes, F in batches:
            self.tell(genomes, F)
        return True

    @property
    def validated(self) -> tuple[np.ndarray, np.ndarray]:
        """Genomes and objective rows of the successful evaluations told so far."""
        ok = ~np.isnan(self.F).any(axis=1)
        return self.genomes[ok], self.F[ok]


def make_strategy(name: str, space: SearchSpace, n_objectives: int, seed: int, options: dict[str, Any]
                  ) -> Strategy:
    cls = strategies.get(name)
    try:
        return cls(space, n_objectives, seed, **options)
    except TypeError as exc:
        raise ConfigError(f"strategy '{name}': {exc}") from None
