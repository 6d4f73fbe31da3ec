"""LINAS: NSGA-II on learned predictors proposes what to validate next.

Each outer iteration (one ``ask``):

1. fit one predictor per objective on every validated network;
2. run pymoo's NSGA-II on the *predicted* objectives (``inner_evaluations`` predictions,
   vectorized over each generation), seeded afresh for the iteration and started
   from the best validated networks (non-dominated rank, then crowding);
3. return ``population`` networks never validated before: the predicted
   non-dominated ones first, ranked over every network the inner search visited.

The first ask returns the initial population shared with the other strategies.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from threadpoolctl import threadpool_limits

from linas.errors import ConfigError
from linas.space import SearchSpace
from linas.strategies._pymoo import FastNSGA2, genome_problem, nsga2_operators
from linas.strategies.base import Strategy, initial_population, strategies
from predictors import encode_for, make_predictor
from predictors.diagnostics import prediction_quality


@strategies.register("linas")
class Linas(Strategy):
    """Lightweight Iterative NAS (Cummings et al., GECCO'22) without the public code's defects.

    Options: ``population`` (networks validated per outer iteration, default 50),
    ``inner_evaluations`` (predicted evaluations per inner NSGA-II, default 20,000),
    ``inner_population`` (default 50) and ``predictor`` (a registered predictor name,
    default ``"auto"``: the better of ridge and SVR by cross-validation).
    """

    def __init__(self, space: SearchSpace, n_objectives: int, seed: int, population: int = 50,
                 inner_evaluations: int = 20_000, inner_population: int = 50, predictor: str = "auto") -> None:
        super().__init__(space, n_objectives, seed, population)
        if inner_evaluations < inner_population:
            raise ConfigError("inner_evaluations must be at least inner_population")
        make_predictor(predictor)  # fail on an unknown predictor before the run starts
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
        genomes, F = self.validated
        if len(genomes) < 2:  # nothing to learn from yet
            return self.space.sample_unique(self._rng, self.population, exclude=self.known)
        # The matrices here are small: one BLAS thread per call beats several, and the
        # per-objective fits already run side by side.
        with threadpool_limits(1):
            models = self._fit(genomes, F)
            visited, predicted = self._inner_search(models, genomes, F)
        return self._select(visited, predicted)

    def _fit(self, genomes: np.ndarray, F: np.ndarray) -> list:
        """One predictor per objective, fitted in parallel threads (the solvers release the GIL)."""

        def fit_one(j: int):
            model = make_predictor(self.predictor, seed=self.seed + self.step)
            start = time.perf_counter()
            model.fit(encode_for(model, self.space, genomes), F[:, j])
            return model, time.perf_counter() - start

        with ThreadPoolExecutor(max_workers=self.n_objectives) as pool:
            fitted = list(pool.map(fit_one, range(self.n_objectives)))
        for j, (model, seconds) in enumerate(fitted):
            self.diagnostics.append({"step": self.step, "objective": j, "predictor": model.describe(),
                                     "n_train": len(genomes), "cv_error": model.cv_error, "fit_seconds": seconds})
        return [model for model, _ in fitted]

    def predict(self, models: list, genomes: np.ndarray) -> np.ndarray:
        """Predicted objective rows (minimization) of ``genomes``, all at once."""
        features = {}
        out = np.empty((len(genomes), len(models)))
        for j, model in enumerate(models):
            enc = model.encoding
            if enc not in features:
                features[enc] = encode_for(model, self.space, genomes)
            out[:, j] = model.predict(features[enc])
        return out

    def _inner_search(self, models: list, genomes: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen_X: list[np.ndarray] = []
        seen_F: list[np.ndarray] = []

        def evaluate(X: np.ndarray) -> np.ndarray:
            pred = self.predict(models, X)
            seen_X.append(X)
            seen_F.append(pred)
            return pred

        problem = genome_problem(self.space, self.n_objectives, evaluate=evaluate)
        start = _best_first(genomes, F, self.inner_population)
        if len(start) < self.inner_population:
            extra = self.space.sample_unique(self._rng, self.inner_population - len(start),
                                             exclude=self.space.keys(start))
            start = np.vstack([start, extra])
        # Predictions are cheap and candidates are deduplicated when selected, so the inner
        # search skips pymoo's duplicate elimination (a quarter of its time, no better fronts).
        algorithm = FastNSGA2(pop_size=self.inner_population, sampling=start,
                          **nsga2_operators(self.space, eliminate_duplicates=False))
        minimize(problem, algorithm, termination=("n_eval", self.inner_evaluations),
                 seed=_derive_seed(self.seed, self.step), verbose=False)
        X = np.vstack(seen_X)
        P = np.vstack(seen_F)
        # Distinct networks in order of first visit, minus those already validated.
        rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
        _, first = np.unique(rows, return_index=True)
        first = np.sort(first)
        fresh = np.array([i for i in first if X[i].tobytes() not in self._known_genomes], dtype=np.int64)
        return X[fresh], P[fresh]

    def _select(self, visited: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        n = self.population
        idx = _best_first_indices(predicted, n) if len(visited) else np.empty(0, dtype=np.int64)
        chosen = visited[idx]
        self._proposed = dict(zip(self.space.keys(chosen), predicted[idx]))
        if len(chosen) < n:  # the inner search saw too few new networks: top up at random
            extra = self.space.sample_unique(self._rng, n - len(chosen),
                                             exclude=self.known | set(self._proposed))
            chosen = np.vstack([chosen, extra])
        return chosen

    # ------------------------------------------------------------------ tell
    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        """The predictors are refitted on everything told, so a diverged replay catches up
        by being told the archived batches (their proposals were not this session's)."""
        self._proposed = {}
        return self._tell_batches(batches)

    def tell(self, genomes: np.ndarray, F: np.ndarray) -> None:
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
        super().tell(genomes, F)
        self._known_genomes.update(g.tobytes() for g in np.asarray(genomes, dtype=np.int64))


def _best_first_indices(F: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` rows of ``F``: whole non-dominated fronts in order, the
    last front cut by crowding distance (most isolated first)."""
    if len(F) <= n:
        fronts = NonDominatedSorting().do(F)
        return np.concatenate(fronts)
    fronts = NonDominatedSorting().do(F, n_stop_if_ranked=n)
    picked: list[int] = []
    for front in fronts:
        if len(picked) + len(front) <= n:
            picked.extend(front)
            continue
        crowding = calc_crowding_distance(F[front])
        order = np.argsort(-crowding, kind="stable")
        picked.extend(front[order[: n - len(picked)]])
        break
    return np.array(picked, dtype=np.int64)


def _best_first(genomes: np.ndarray, F: np.ndarray, n: int) -> np.ndarray:
    return genomes[_best_first_indices(F, n)]


def _derive_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
