"""Prescreening: validate only the most promising of many random networks, judged by cheap features.

After the shared initial population, each ask draws ``candidates`` new random networks
(never told before), computes their features (the experiment's ``features:`` source, e.g.
zero-cost proxies and MACs: no validation, no budget) and returns the best ``population``
of them by non-dominated sorting of the features, each turned to minimization by its
metric's declared direction; crowding distance breaks the tie within the last front taken
(:func:`linas.mo.best_first`).

With constraints the sorting uses constraint domination: a constraint on a metric the
feature source measures is checked on that feature; any other is predicted by a ridge
predictor fitted on the validated networks (once two are validated), so candidates inside
every constraint come first. Candidates whose features failed rank last.

Experiment config::

    features: {name: zc_mbv3, options: {...}, metrics: [snip, macs]}
    strategies:
      - {name: prescreen, options: {population: 50, candidates: 200}}
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from linas.errors import ConfigError
from linas.mo import best_first
from linas.spec import Problem
from linas.strategies._batch import RngState
from linas.strategies.base import Strategy, StrategyOptions, initial_population, strategies
from predictors import encode_for, make_predictor


@strategies.register("prescreen")
class Prescreen(RngState, Strategy):
    """Random candidates prescreened by the non-dominated sorting of their features.

    Options: ``population`` (networks validated per step, default 50), ``candidates``
    (random networks whose features are computed per step, default 500), ``features``
    (which metrics of the feature source to sort by; default all of them).
    """

    quick_options = {"candidates": 30}

    class Options(StrategyOptions):
        candidates: int = Field(500, ge=1, description="random networks whose features are computed per step")
        features: list[str] | None = Field(None, description="metrics of the features: source to sort by "
                                                             "(default: all of them)")

        @model_validator(mode="after")
        def _consistent(self):
            if self.candidates < self.population:
                raise ValueError("candidates must be at least population")
            if self.features is not None and (not self.features or len(set(self.features)) != len(self.features)):
                raise ValueError("features: name each metric once, at least one")
            return self

    def __init__(self, problem: Problem, seed: int, population: int = 50, candidates: int = 500,
                 features: list[str] | None = None) -> None:
        super().__init__(problem, seed, population)
        self.Options(population=population, candidates=candidates, features=features)
        self.check_features({"features": features}, self._features_available())
        self.candidates = candidates
        self.names = list(features or self.problem.features.names)
        self._rng = np.random.default_rng([seed, 5])

    @classmethod
    def check_features(cls, options: dict, features: tuple[str, ...] | None) -> bool:
        if features is None:
            raise ConfigError("strategy 'prescreen' needs a features: section in the experiment config "
                              "(a feature evaluator and its metrics)")
        missing = [f for f in options.get("features") or () if f not in features]
        if missing:
            raise ConfigError(f"strategy 'prescreen': features: '{missing[0]}' is not among the features "
                              f"({', '.join(features)})")
        return True

    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        pool = self.space.sample_unique(self._rng, self.candidates, exclude=self.known)
        if len(pool) <= self.population:
            return pool
        return pool[self.choose(pool)]

    def choose(self, pool: np.ndarray) -> np.ndarray:
        """Indices of the ``population`` networks of ``pool`` to validate, best first."""
        return best_first(self.features.minimization(pool, self.names), self.population,
                          self._violations(pool) if self.problem.n_constraints else None)

    def _violations(self, pool: np.ndarray) -> np.ndarray:
        """Constraint violations of ``pool``: from the feature of the same metric, else predicted."""
        G = np.zeros((len(pool), self.problem.n_constraints))
        ok = ~(np.isnan(self.F).any(axis=1) | np.isnan(self.G).any(axis=1))
        for j, c in enumerate(self.problem.constraints):
            if c.metric in self.features.names:
                values = self.features.values(pool, [c.metric])[:, 0]
                G[:, j] = [np.nan if np.isnan(v) else c.violation(v) for v in values]
            elif ok.sum() >= 2:
                model = make_predictor("ridge", seed=self.seed + self.step)
                model.fit(encode_for(model, self.space, self.genomes[ok]), self.G[ok, j])
                G[:, j] = model.predict(encode_for(model, self.space, pool))
        return G
