"""LINAS: NSGA-II on learned predictors proposes what to validate next.

Each outer iteration (one ``ask``):

1. fit one predictor per objective on every validated network;
2. run pymoo's NSGA-II on the *predicted* objectives (``inner_evaluations`` predictions,
   vectorized over each generation), seeded afresh for the iteration and started
   from the best validated networks (non-dominated rank, then crowding);
3. return ``population`` networks never validated before: the predicted
   non-dominated ones first, ranked over every network the inner search visited.

With ``predictor_features`` (metrics of the experiment's ``features:`` source, e.g.
zero-cost proxies), step 3 changes: the best ``feature_pool`` networks of the inner search
get their features, predictors fitted on the encoding plus the features (standardized) of
every validated network re-rank them, and the batch is taken from that re-ranking. The
inner search itself stays on the encoding-only predictors (features are not free).

The first ask returns the initial population shared with the other strategies.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from pymoo.optimize import minimize
from threadpoolctl import threadpool_limits

from linas.errors import ConfigError
from linas.mo import best_first, expected_hv_improvement
from linas.spec import Problem
from linas.strategies._pymoo import FastNSGA2, genome_problem, nsga2_operators
from linas.strategies.base import (Strategy, StrategyOptions, initial_population, rng_state, set_rng_state,
                                   strategies)
from predictors import encode_for, make_predictor
from predictors.diagnostics import prediction_quality


@strategies.register("linas")
class Linas(Strategy):
    """Lightweight Iterative NAS (Cummings et al., GECCO'22) without the public code's defects.

    Options: ``population`` (networks validated per outer iteration, default 50),
    ``inner_evaluations`` (predicted evaluations per inner NSGA-II, default 20,000),
    ``inner_population`` (default 50), ``predictor`` (a registered predictor name, default
    ``"ensemble"``: the mean of ridge, SVR and gradient boosting; ``"auto"``, the better of ridge
    and SVR by cross-validation, is the paper's choice) and ``selection`` (default
    ``"population"``: each batch from the inner search's final population first; ``"visited"``,
    best-first over everything the inner search visited, is this package's first LINAS). The
    defaults won on the synthetic benchmark and on (e), 20 paired seeds each (results/strategies).

    With constraints, one more predictor per constrained metric is fitted; the inner
    NSGA-II uses constraint domination on the predictions, so the networks proposed are
    the predicted-feasible ones first.

    ``predictor_features`` (default none) and ``feature_pool`` (default 4 x ``population``):
    see the module docstring.
    """

    quick_options = {"inner_evaluations": 500, "inner_population": 20}

    class Options(StrategyOptions):
        inner_evaluations: int = Field(20_000, ge=2)
        inner_population: int = Field(50, ge=2)
        predictor: str = "ensemble"
        selection: Literal["visited", "population", "ehvi"] = Field(
            "population", description="where each batch comes from: best-first over every network the inner "
                                   "search visited, its final population first (as DyNAS-T does), or by "
                                   "expected hypervolume improvement (needs a predictor with has_std)")
        predictor_features: list[str] | None = Field(
            None, description="metrics of the experiment's features: source that the predictors re-ranking the "
                              "inner search's best networks also get")
        feature_pool: int | None = Field(None, ge=1, description="networks re-ranked with predictor_features "
                                                                 "(default 4 x population)")

        @model_validator(mode="after")
        def _consistent(self):
            if self.inner_evaluations < self.inner_population:
                raise ValueError("inner_evaluations must be at least inner_population")
            if self.predictor_features is not None:
                if not self.predictor_features:
                    raise ValueError("predictor_features: name at least one feature, or leave it out")
                if len(set(self.predictor_features)) != len(self.predictor_features):
                    raise ValueError("predictor_features are repeated")
                if self.selection == "ehvi":
                    raise ValueError("predictor_features re-rank by predicted rank: use selection visited or "
                                     "population, not ehvi")
            if self.feature_pool is not None:
                if not self.predictor_features:
                    raise ValueError("feature_pool needs predictor_features")
                if self.feature_pool < self.population:
                    raise ValueError("feature_pool must be at least population")
            model = make_predictor(self.predictor)  # fail on an unknown predictor before the run starts
            if self.selection == "ehvi" and not model.has_std:
                raise ValueError(f"selection ehvi needs a predictor with predictive uncertainty (gp or ensemble), "
                                 f"not '{self.predictor}'")
            return self

    def __init__(self, problem: Problem, seed: int, population: int = 50, inner_evaluations: int = 20_000,
                 inner_population: int = 50, predictor: str = "ensemble", selection: str = "population",
                 predictor_features: list[str] | None = None, feature_pool: int | None = None) -> None:
        super().__init__(problem, seed, population)
        self.Options(population=population, inner_evaluations=inner_evaluations,
                     inner_population=inner_population, predictor=predictor, selection=selection,
                     predictor_features=predictor_features, feature_pool=feature_pool)
        self.check_features({"predictor_features": predictor_features}, self._features_available())
        self.predictor_features = list(predictor_features or [])
        self.feature_pool = feature_pool or 4 * population
        self.selection = selection
        self.inner_evaluations = inner_evaluations
        self.inner_population = inner_population
        self.predictor = predictor
        self._rng = np.random.default_rng([seed, 2])
        self._proposed: dict[str, np.ndarray] = {}
        self._known_genomes: set[bytes] = set()  # as self.known, for fast lookups of canonical genomes

    # ------------------------------------------------------------------ ask
    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        ok = ~(np.isnan(self.F).any(axis=1) | np.isnan(self.G).any(axis=1))
        genomes, F, G = self.genomes[ok], self.F[ok], self.G[ok]
        if len(genomes) < 2:  # nothing to learn from yet
            return self.space.sample_unique(self._rng, self.population, exclude=self.known)
        # The matrices here are small: one BLAS thread per call beats several, and the
        # per-objective fits already run side by side.
        with threadpool_limits(1):
            models = self._fit(genomes, np.hstack([F, G]))
            visited, predicted = self._inner_search(models, genomes, F, G)
            if self.predictor_features:
                return self._rerank(visited, predicted, genomes, np.hstack([F, G]))
            return self._select(visited, predicted, models)

    @classmethod
    def check_features(cls, options: dict, features: tuple[str, ...] | None) -> bool:
        names = options.get("predictor_features")
        if not names:
            return False
        if features is None:
            raise ConfigError("strategy 'linas': predictor_features needs a features: section in the experiment "
                              "config (a feature evaluator and its metrics)")
        missing = [f for f in names if f not in features]
        if missing:
            raise ConfigError(f"strategy 'linas': predictor_features: '{missing[0]}' is not among the features "
                              f"({', '.join(features)})")
        return True

    def _fit(self, genomes: np.ndarray, F: np.ndarray, extra: np.ndarray | None = None) -> list:
        """One predictor per objective and constraint column of ``F``, fitted in parallel
        threads (the solvers release the GIL); ``extra`` columns join the encoding."""

        def fit_one(j: int):
            model = make_predictor(self.predictor, seed=self.seed + self.step)
            start = time.perf_counter()
            model.fit(_with_columns(encode_for(model, self.space, genomes), extra), F[:, j])
            return model, time.perf_counter() - start

        with ThreadPoolExecutor(max_workers=F.shape[1]) as pool:
            fitted = list(pool.map(fit_one, range(F.shape[1])))
        suffix = "" if extra is None else f"+{'+'.join(self.predictor_features)}"
        for j, (model, seconds) in enumerate(fitted[: self.n_objectives]):
            self.diagnostics.append({"step": self.step, "objective": j, "predictor": model.describe() + suffix,
                                     "n_train": len(genomes), "cv_error": model.cv_error, "fit_seconds": seconds})
        return [model for model, _ in fitted]

    def predict(self, models: list, genomes: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Predicted objective (minimization) and constraint columns of ``genomes``, all at once
        (``extra``: the feature columns the models were fitted with, if any)."""
        features = {}
        out = np.empty((len(genomes), len(models)))
        for j, model in enumerate(models):
            enc = model.encoding
            if enc not in features:
                features[enc] = _with_columns(encode_for(model, self.space, genomes), extra)
            out[:, j] = model.predict(features[enc])
        return out

    def _rerank(self, visited: np.ndarray, predicted: np.ndarray, genomes: np.ndarray, Y: np.ndarray
                ) -> np.ndarray:
        """The batch from the best ``feature_pool`` visited networks, re-ranked by predictors fitted on
        the encoding plus ``predictor_features`` (standardized on the validated networks; a
        missing value counts as the mean)."""
        m = self.n_objectives
        pool = visited[best_first(predicted[:, :m], self.feature_pool, predicted[:, m:])]
        train = self.features.values(genomes, self.predictor_features)
        candidates = self.features.values(pool, self.predictor_features)
        with warnings.catch_warnings():  # a column with no value yet: mean 0, scale 1
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nan_to_num(np.nanmean(train, axis=0)), np.nanstd(train, axis=0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)

        def standardize(Z: np.ndarray) -> np.ndarray:
            return np.nan_to_num((Z - mean) / std, nan=0.0)

        models = self._fit(genomes, Y, standardize(train))
        reranked = self.predict(models, pool, standardize(candidates)) if len(pool) else predicted[:0]
        return self._select(pool, reranked, models)

    def _inner_search(self, models: list, genomes: np.ndarray, F: np.ndarray, G: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        seen_X: list[np.ndarray] = []
        seen_F: list[np.ndarray] = []
        m = self.n_objectives

        def evaluate(X: np.ndarray):
            pred = self.predict(models, X)
            seen_X.append(X)
            seen_F.append(pred)
            return (pred[:, :m], pred[:, m:]) if self.problem.n_constraints else pred

        problem = genome_problem(self.space, m, n_constraints=self.problem.n_constraints, evaluate=evaluate)
        start = genomes[best_first(F, self.inner_population, G)]
        if len(start) < self.inner_population:
            extra = self.space.sample_unique(self._rng, self.inner_population - len(start),
                                             exclude=self.space.keys(start))
            start = np.vstack([start, extra])
        # Predictions are cheap and candidates are deduplicated when selected, so the inner
        # search skips pymoo's duplicate elimination (a quarter of its time, no better fronts).
        algorithm = FastNSGA2(pop_size=self.inner_population, sampling=start,
                          **nsga2_operators(self.space, eliminate_duplicates=False))
        result = minimize(problem, algorithm, termination=("n_eval", self.inner_evaluations),
                          seed=_derive_seed(self.seed, self.step), verbose=False)
        X = np.vstack(seen_X)
        P = np.vstack(seen_F)
        if self.selection == "population":
            # The final population first (in visit order), then everything else visited.
            final = {g.tobytes() for g in np.asarray(result.pop.get("X"), dtype=np.int64)}
            in_final = np.array([x.tobytes() in final for x in X])
            X, P = np.vstack([X[in_final], X[~in_final]]), np.vstack([P[in_final], P[~in_final]])
            self._final_keys = final
        # Distinct networks in order of first visit, minus those already validated.
        rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
        _, first = np.unique(rows, return_index=True)
        first = np.sort(first)
        fresh = np.array([i for i in first if X[i].tobytes() not in self._known_genomes], dtype=np.int64)
        return X[fresh], P[fresh]

    def _select(self, visited: np.ndarray, predicted: np.ndarray, models: list) -> np.ndarray:
        n, m = self.population, self.n_objectives
        idx = np.empty(0, dtype=np.int64)
        if len(visited) and self.selection == "ehvi":
            idx = self._ehvi_batch(models, visited, predicted)
        if len(visited) and self.selection == "population":
            # Best-first within the fresh members of the final population, then the visited rest.
            final = np.array([g.tobytes() in self._final_keys for g in visited])
            inside, outside = np.flatnonzero(final), np.flatnonzero(~final)
            head = inside[best_first(predicted[inside, :m], n, predicted[inside, m:])]
            tail = (outside[best_first(predicted[outside, :m], n - len(head), predicted[outside, m:])]
                    if len(head) < n else [])
            idx = np.concatenate([head, np.asarray(tail, dtype=np.int64)])
        elif len(visited) and self.selection == "visited":
            idx = best_first(predicted[:, :m], n, predicted[:, m:])
        chosen = visited[idx]
        self._proposed = dict(zip(self.space.keys(chosen), predicted[idx, :m]))
        if len(chosen) < n:  # the inner search saw too few new networks: top up at random
            extra = self.space.sample_unique(self._rng, n - len(chosen),
                                             exclude=self.known | set(self._proposed))
            chosen = np.vstack([chosen, extra])
        return chosen

    def _ehvi_batch(self, models: list, visited: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Greedy batch by expected hypervolume improvement over the validated front.

        Candidates are the best ``10 x population`` networks the inner search visited
        (best-first on the predicted means; predicted-infeasible ones only when too few are
        feasible). Each pick maximizes the Monte Carlo EHVI of the predictors' Gaussian
        (mean, std) per objective in normalized space; it then joins the front at its mean
        (a believer), so the next pick adds where it does not. Picks that add nothing are
        followed by the rest of the candidates in best-first order.
        """
        n, m = self.population, self.n_objectives
        pool = best_first(predicted[:, :m], min(len(visited), 10 * n), predicted[:, m:])
        features: dict = {}
        mean, std = np.empty((len(pool), m)), np.empty((len(pool), m))
        for j, model in enumerate(models[:m]):
            if model.encoding not in features:
                features[model.encoding] = encode_for(model, self.space, visited[pool])
            mean[:, j], std[:, j] = model.predict(features[model.encoding], return_std=True)
        best, worst = self.problem.normalize(np.zeros((1, m)))[0], self.problem.normalize(np.ones((1, m)))[0]
        scale = np.abs(worst - best)  # normalized units per unit of each objective
        mean_n, std_n = self.problem.normalize(mean), std * scale
        ok = ~(np.isnan(self.F).any(axis=1) | np.isnan(self.G).any(axis=1)) & (self.G <= 0).all(axis=1)
        front = self.problem.normalize(self.F[ok])
        ref = np.asarray(self.problem.reference_point)
        feasible = (predicted[pool, m:] <= 0).all(axis=1)
        allowed = feasible if feasible.sum() >= n else np.ones(len(pool), dtype=bool)
        Z = np.random.default_rng(_derive_seed(self.seed, self.step) + 1).standard_normal((128, m))
        picked: list[int] = []
        for _ in range(min(n, int(allowed.sum()))):
            free = np.flatnonzero(allowed)
            score = expected_hv_improvement(mean_n[free], std_n[free], front, ref, Z)
            if score.max() <= 0:
                break
            i = free[int(np.argmax(score))]
            picked.append(i)
            allowed[i] = False
            front = np.vstack([front, mean_n[i]])
        rest = [i for i in range(len(pool)) if i not in set(picked)]
        return pool[np.array(picked + rest[: n - len(picked)], dtype=np.int64)]

    # ------------------------------------------------------------------ tell
    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
        """The predictors are refitted on everything told, so a diverged resume catches up
        by being told the archived batches (their proposals were not this session's)."""
        self._proposed = {}
        return self._tell_batches(batches)

    def state_dict(self) -> dict:
        return {"rng": rng_state(self._rng)}

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self._rng, state["rng"])
        self._known_genomes = {g.tobytes() for g in self.genomes}

    def tell(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None = None) -> None:
        """Also scores the predictions behind this batch against what was measured."""
        keys = self.space.keys(genomes)
        pairs = [(self._proposed[k], f) for k, f in zip(keys, np.asarray(F, dtype=float))
                 if k in self._proposed and not np.isnan(f).any()]
        if pairs:
            predicted = np.array([p for p, _ in pairs])
            measured = np.array([f for _, f in pairs])
            for j in range(self.n_objectives):
                quality = prediction_quality(predicted[:, j], measured[:, j])
                self.diagnostics.append({"step": self.step, "objective": j, **quality})
        self._proposed = {}
        super().tell(genomes, F, G)
        self._known_genomes.update(g.tobytes() for g in np.asarray(genomes, dtype=np.int64))


def _with_columns(encoded, extra: np.ndarray | None):
    """An encoding (a matrix, or a dict of them for composite predictors) with ``extra`` columns appended."""
    if extra is None:
        return encoded
    if isinstance(encoded, dict):
        return {k: np.hstack([v, extra]) for k, v in encoded.items()}
    return np.hstack([encoded, extra])


def _derive_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
