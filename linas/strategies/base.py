"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from linas.registry import Options, Registry
from linas.space import SearchSpace
from linas.spec import Problem

strategies: Registry = Registry("strategy", packages=["linas.strategies"])


def initial_population(space: SearchSpace, seed: int, size: int) -> np.ndarray:
    """The first batch of every strategy: ``size`` distinct random networks.

    The same for every strategy given the same seed, so comparisons are paired.
    """
    return space.sample_unique(np.random.default_rng(seed), size)


class StrategyOptions(Options):
    """Options every strategy takes; a strategy's own ``Options`` extends this model."""

    population: int = Field(50, ge=2, description="networks per batch (the initial population too)")


class Strategy(ABC):
    """Proposes networks to validate and learns from their measured objectives.

    The loop calls ``ask()`` for a batch of canonical genomes, has them validated (or
    looks them up when already validated), then calls ``tell(genomes, F, G)`` for the
    whole batch, in the same order: ``F`` has one row per genome with the objectives
    turned to minimization, ``G`` one column per constraint of the problem (``<= 0``
    when satisfied, pymoo's convention); failed evaluations are NaN rows in both.

    A multi-fidelity strategy sets :attr:`fidelity` in ``ask()``: below 1, the batch is
    evaluated at that fidelity (each successful evaluation costs ``fidelity`` of the
    budget), stored apart from validations, and told as above; such a batch is not
    remembered as validated (``tell`` of a multi-fidelity strategy decides what to keep).

    A strategy is deterministic given its seed and what it was told. Resume restores it
    from the archive: the runner hands back everything it was told and the JSON state of
    :meth:`state_dict` saved after its last ``tell``, so nothing expensive is recomputed.
    A strategy whose ``state_dict`` returns None is replayed against the archive instead
    (its asks are rerun, nothing is validated again).

    A new strategy subclasses this, declares its options as a pydantic ``Options``
    model (extending :class:`StrategyOptions`) and registers itself::

        @strategies.register("my_search")
        class MySearch(Strategy):
            class Options(StrategyOptions):
                temperature: float = 1.0

            def __init__(self, problem, seed, population=50, temperature=1.0):
                super().__init__(problem, seed, population)
                ...

            def ask(self):
                ...
    """

    Options: ClassVar[type[BaseModel]] = StrategyOptions
    #: Options that make a small run quick (the contract tests use them, with a small population).
    quick_options: ClassVar[dict[str, Any]] = {}
    #: How many constraints the strategy needs (e.g. 1 for OFA's single-constraint evolution).
    requires_constraints: ClassVar[int] = 0
    #: The lowest fidelity the strategy asks for; below 1 the evaluator must support fidelity.
    min_fidelity: float = 1.0
    #: The fidelity of the batch the last ``ask()`` returned (1: validations).
    fidelity: float = 1.0

    def __init__(self, problem: Problem, seed: int, population: int = 50) -> None:
        self.problem = problem
        self.space = problem.space
        self.n_objectives = problem.n_objectives
        self.seed = seed
        self.population = population
        self.step = 0
        # Everything told so far: canonical genomes, their keys, objective and constraint rows.
        self.genomes = np.empty((0, len(self.space)), dtype=np.int64)
        self.F = np.empty((0, self.n_objectives))
        self.G = np.empty((0, problem.n_constraints))
        self.known: set[str] = set()
        #: Keys in the order they were told (what resume restores).
        self.told_keys: list[str] = []
        #: Diagnostics a strategy reports (dicts with ``step`` and ``objective`` index); the
        #: runner stores and clears them after each ask and tell.
        self.diagnostics: list[dict] = []

    @abstractmethod
    def ask(self) -> np.ndarray:
        """The next batch of canonical genomes, shape ``(n, len(space))``."""

    def tell(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None = None) -> None:
        self._remember(genomes, F, G)
        self.step += 1

    def _remember(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None) -> None:
        genomes = np.asarray(genomes, dtype=np.int64).reshape(-1, len(self.space))
        F = np.asarray(F, dtype=float).reshape(len(genomes), self.n_objectives)
        G = self._constraint_rows(G, len(genomes))
        new = []
        for i, k in enumerate(self.space.keys(genomes)):
            if k not in self.known:
                self.known.add(k)
                self.told_keys.append(k)
                new.append(i)
        self.genomes = np.vstack([self.genomes, genomes[new]])
        self.F = np.vstack([self.F, F[new]])
        self.G = np.vstack([self.G, G[new]])

    def _constraint_rows(self, G: np.ndarray | None, n: int) -> np.ndarray:
        k = self.problem.n_constraints
        if G is None:
            return np.zeros((n, k))
        return np.asarray(G, dtype=float).reshape(n, k)

    # ------------------------------------------------------------------ features
    @classmethod
    def check_features(cls, options: dict[str, Any], features: tuple[str, ...] | None) -> bool:
        """Whether a strategy built with ``options`` (defaults filled in) uses the experiment's
        feature source, whose metrics are ``features`` (None: the experiment names none);
        ConfigError when it needs features that are not there."""
        return False

    @property
    def features(self) -> Any:
        """The experiment's feature source (:class:`linas.features.FeatureSource`), or None: cheap
        metrics of any network, computed on demand, cached, never counted as validations."""
        return self.problem.features

    def _features_available(self) -> tuple[str, ...] | None:
        return None if self.problem.features is None else tuple(self.problem.features.names)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any] | None:
        """JSON-serializable state beyond what was told (RNG states, step-local choices),
        taken after a ``tell``; None when the strategy can only be replayed."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; called after the told data is back."""

    def restore(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None, step: int,
                state: dict[str, Any]) -> None:
        """Put the strategy where it was after its ``step``-th tell: ``genomes``, ``F`` and ``G``
        are everything told, in the order it was told."""
        self._remember(genomes, F, G)
        self.step = step
        self.load_state_dict(state)

    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
        """Catch up with evaluations the strategy did not ask for in this session.

        A replayed strategy (one without ``state_dict``) on another machine or with other
        library versions may propose other networks than its archive holds; the runner
        then hands it the archived batches it was never told (``(genomes, F, G)`` per
        original step, as ``tell`` takes them). Returns False when the strategy's state
        cannot take them (the default); one whose state is what it was told tells them
        and returns True.
        """
        return False

    def _tell_batches(self, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
        self.diagnostics.clear()  # those of the ask that is discarded
        for genomes, F, G in batches:
            self.tell(genomes, F, G)
        return True


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-serializable state of a NumPy generator."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


def make_strategy(name: str, problem: Problem, seed: int, options: dict[str, Any] | None = None) -> Strategy:
    """Build a registered strategy with its options validated by its ``Options`` model::

        make_strategy("linas", problem, seed=0, options={"population": 50})
    """
    return strategies.build(name, problem, seed, **dict(options or {}))
