"""Multi-objective Bayesian optimization: GP surrogates, expected hypervolume improvement.

The method of Emmerich, Giannakoglou and Naujoks (2006; EHVI) and Daulton, Balandat and
Bakshy (NeurIPS 2020/2021; qEHVI/qNEHVI, batches by sequential greedy selection with
pending points), on linas's discrete spaces. Each ask (after the shared initial
population):

1. one Gaussian process per objective (normalized with the problem's fixed bounds) and
   per constraint column, fitted by marginal likelihood on the one-hot encoding of every
   validated network (scikit-learn: constant x Matern-5/2 + white noise);
2. candidates: ``candidates`` networks from an inner NSGA-II (pymoo) on the GP means,
   best first over every network it visited, as LINAS does, plus up to
   ``front_mutations`` mutations of the validated front; never a network already told;
3. a batch of ``population`` chosen greedily: the candidate of highest expected
   hypervolume improvement (Monte Carlo over the GP posterior, ``mc_samples`` common
   draws, exact hypervolume improvement per draw; times the probability of feasibility
   under constraints) is taken, then *fantasized* as observed at its posterior mean
   (the Kriging believer: it joins the believed front, and the posterior covariance of
   the remaining candidates is conditioned on it, which shrinks the uncertainty of its
   neighbours), and the next is chosen against that; when no candidate is expected to
   improve, the rest are taken best first on the GP means.

Two backends. ``sklearn`` (the default) is the above: it keeps torch out of the search
engine, and on the 2 shared CPU cores this project runs on the cost of a step stays
small: the GP hyperparameters are fitted on ``fit_points`` networks (the O(n^3)
likelihood gradients dominate otherwise: 150 s for two GPs at 500 networks under load,
5 s with 300), the posterior uses all, and the 2-objective improvement is computed
exactly in O(log front) per sample, vectorized over candidates x samples; the synthetic
and lookup-table objectives are nearly noise-free, so the observed front is taken as
measured. More than 2 objectives fall back to linas.mo.hv_improvement per sample (slow).
``botorch`` (``pip install 'linas[bo]'``, :mod:`linas.strategies._botorch`) fits
BoTorch SingleTaskGPs (ARD on the one-hot features) and picks the batch by qLogNEHVI
with the earlier picks as pending points, over the same candidates; it integrates over
the noisy front of every observed network at each pick, and is far slower here: 416 s
per step at 500 observations (GP fits 143 s, acquisition 271 s) and 1,160 s at 1,000
(fits 616 s, acquisition 541 s), against 7-15 s (measured earlier) for the sklearn
backend with 5,000 inner predictions and 500 candidates and 47-68 s with the defaults
(20,000 and 1,000; the inner search on the GP means is most of it), on 2 cores shared
with other jobs (results/benchmarks/mobo_overhead.json, mobo_overhead_botorch.json; the
synthetic comparison's runs spent 0.034 and 0.085 s of search per validation on average
over 1,000).

The state saved after each tell is the random generator: the GP fits are deterministic
given what was told, so resume restores without replaying.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from pymoo.optimize import minimize
from scipy.linalg import solve_triangular
from scipy.spatial.distance import cdist
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from linas.mo import best_first, expected_hv_improvement, pareto_ranks, total_violation
from linas.spec import Problem
from linas.strategies._pymoo import FastNSGA2, genome_problem, nsga2_operators
from linas.strategies._batch import RngState, fresh_batch
from linas.strategies.base import Strategy, StrategyOptions, initial_population, strategies


class GP:
    """A scikit-learn GP on standardized targets with the latent posterior (no noise) exposed."""

    def __init__(self, seed: int = 0, ard: bool = False, fit_points: int | None = None) -> None:
        self.seed, self.ard, self.fit_points = seed, ard, fit_points

    def fit(self, X: np.ndarray, y: np.ndarray) -> GP:
        """Hyperparameters by marginal likelihood on at most ``fit_points`` of the rows (a
        seeded random subset: the likelihood's O(n^3) gradient steps dominate), then the
        posterior on all rows with them."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        y = np.asarray(y, dtype=float)
        self.mean_, self.std_ = float(y.mean()), float(y.std()) or 1.0
        scales = np.ones(X.shape[1]) if self.ard else 1.0
        kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(scales, (1e-2, 1e3), nu=2.5)
                  + WhiteKernel(0.1, (1e-6, 1.0)))
        target = (y - self.mean_) / self.std_
        with warnings.catch_warnings():  # hyperparameters at a bound are fine here, and common
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.fit_points is not None and len(X) > self.fit_points:
                rows = np.random.default_rng(self.seed).choice(len(X), self.fit_points, replace=False)
                kernel = GaussianProcessRegressor(kernel, random_state=self.seed).fit(X[rows], target[rows]).kernel_
                self.gp = GaussianProcessRegressor(kernel, optimizer=None).fit(X, target)
            else:
                self.gp = GaussianProcessRegressor(kernel, random_state=self.seed).fit(X, target)
        self.X = X
        return self

    @property
    def noise(self) -> float:
        """Observation noise variance, in the target's units."""
        return float(self.gp.kernel_.k2.noise_level) * self.std_ ** 2

    def mean(self, X: np.ndarray, distances: np.ndarray | None = None) -> np.ndarray:
        """Posterior mean at ``X``; ``distances`` (Euclidean, to the training rows) may be
        passed when the kernel is isotropic, so several GPs on the same rows share them."""
        if distances is None or self.ard:
            K = self.gp.kernel_.k1(X, self.X)
        else:
            scale, length = self.gp.kernel_.k1.k1.constant_value, self.gp.kernel_.k1.k2.length_scale
            t = np.sqrt(5.0) * distances / length
            K = scale * (1.0 + t + t * t / 3.0) * np.exp(-t)  # Matern 5/2
        return K @ self.gp.alpha_ * self.std_ + self.mean_

    def posterior(self, X: np.ndarray, full_cov: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Latent posterior mean and covariance (or variance) at ``X``."""
        K = self.gp.kernel_.k1(X, self.X)
        mean = K @ self.gp.alpha_ * self.std_ + self.mean_
        V = solve_triangular(self.gp.L_, K.T, lower=True, check_finite=False)
        if full_cov:
            cov = self.gp.kernel_.k1(X) - V.T @ V
        else:
            cov = self.gp.kernel_.k1.diag(X) - np.einsum("ij,ij->j", V, V)
        return mean, cov * self.std_ ** 2


@strategies.register("mobo")
class MOBO(RngState, Strategy):
    """Multi-objective Bayesian optimization: GPs, Monte Carlo EHVI, greedy batches with
    pending points (Kriging believer).

    Options: ``population`` (networks per batch, default 50), ``inner_evaluations`` and
    ``inner_population`` (the inner NSGA-II on the GP means, default 20,000 and 50),
    ``candidates`` (taken from it, default 1,000), ``front_mutations`` (mutations of the
    validated front added as candidates, default 200), ``mc_samples`` (default 128),
    ``fit_points`` (networks the GP hyperparameters are fitted on, default 300; the
    posterior uses all), ``ard`` (one length scale per one-hot column; slower), ``backend``
    (``sklearn``, or ``botorch``: BoTorch's SingleTaskGPs and qLogNEHVI with pending points,
    ``pip install 'linas[bo]'``; see :mod:`linas.strategies._botorch`).
    """

    quick_options = {"inner_evaluations": 300, "inner_population": 20, "candidates": 60, "front_mutations": 20,
                     "mc_samples": 32}

    class Options(StrategyOptions):
        inner_evaluations: int = Field(20_000, ge=2)
        inner_population: int = Field(50, ge=2)
        candidates: int = Field(1_000, ge=1)
        front_mutations: int = Field(200, ge=0)
        mc_samples: int = Field(128, ge=1)
        fit_points: int = Field(300, ge=2, description="networks the GP hyperparameters are fitted on")
        ard: bool = False
        backend: Literal["sklearn", "botorch"] = "sklearn"

        @model_validator(mode="after")
        def _consistent(self):
            if self.inner_evaluations < self.inner_population:
                raise ValueError("inner_evaluations must be at least inner_population")
            if self.backend == "botorch" and importlib.util.find_spec("botorch") is None:
                raise ValueError("backend 'botorch' needs BoTorch: pip install 'linas[bo]'")
            return self

    def __init__(self, problem: Problem, seed: int, population: int = 50, inner_evaluations: int = 20_000,
                 inner_population: int = 50, candidates: int = 1_000, front_mutations: int = 200,
                 mc_samples: int = 128, fit_points: int = 300, ard: bool = False,
                 backend: Literal["sklearn", "botorch"] = "sklearn") -> None:
        super().__init__(problem, seed, population)
        self.Options(population=population, inner_evaluations=inner_evaluations, inner_population=inner_population,
                     candidates=candidates, front_mutations=front_mutations, mc_samples=mc_samples,
                     fit_points=fit_points, ard=ard, backend=backend)
        self.inner_evaluations, self.inner_population = inner_evaluations, inner_population
        self.n_candidates, self.front_mutations, self.mc_samples = candidates, front_mutations, mc_samples
        self.fit_points, self.ard, self.backend = fit_points, ard, backend
        self._rng = np.random.default_rng([seed, 6])
        #: Seconds spent in each part of the last ask (fit, candidates, acquisition).
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ ask
    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        # One BLAS thread: the matrices are a few hundred rows, and the cores are shared.
        with threadpool_limits(1):
            return self._ask()

    def _ask(self) -> np.ndarray:
        ok = ~(np.isnan(self.F).any(axis=1) | np.isnan(self.G).any(axis=1))
        if ok.sum() < 3:  # nothing to learn from yet
            return self.space.sample_unique(self._rng, self.population, exclude=self.known)
        genomes, Y, G = self.genomes[ok], self.problem.normalize(self.F[ok]), self.G[ok]
        t0 = time.perf_counter()
        X = self.space.encode(genomes)
        if self.backend == "botorch":
            from linas.strategies._botorch import BotorchModel

            model = BotorchModel(X, np.hstack([Y, G]), self.n_objectives, self.seed + self.step)
            predict = lambda g: model.predict(self.space.encode(g))  # noqa: E731
        else:
            models = [GP(self.seed + self.step, self.ard, self.fit_points).fit(X, col) for col in np.hstack([Y, G]).T]
            predict = lambda g: self._predict(models, g)  # noqa: E731
        t1 = time.perf_counter()
        cand = self._candidates(predict, genomes, Y, G)
        t2 = time.perf_counter()
        if not len(cand):
            chosen = cand
        elif self.backend == "botorch":
            chosen = cand[model.select(self.space.encode(cand), self.population, self.problem.reference_point,
                                       self.mc_samples)]
        else:
            chosen = self._select(models, cand, Y, G)
        if len(chosen) < self.population:
            extra = self.space.sample_unique(self._rng, self.population - len(chosen),
                                             exclude=self.known | set(self.space.keys(chosen)))
            chosen = np.vstack([chosen, extra])
        self.timings = {"fit": t1 - t0, "candidates": t2 - t1, "acquisition": time.perf_counter() - t2,
                        "n_train": int(ok.sum()), "n_candidates": len(cand)}
        return chosen

    def _predict(self, models: list[GP], genomes: np.ndarray) -> np.ndarray:
        X = self.space.encode(genomes)
        D = None if self.ard else cdist(X, models[0].X)  # every model is fitted on the same rows
        return np.column_stack([m.mean(X, D) for m in models])

    def _candidates(self, predict, genomes: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Distinct unknown networks: the inner NSGA-II's best on the GP means (``predict``:
        genomes -> objective and constraint columns), then mutations of the validated front."""
        m = self.n_objectives
        seen: list[np.ndarray] = []

        def evaluate(X: np.ndarray):
            pred = predict(X)
            seen.append(X)
            return (pred[:, :m], pred[:, m:]) if self.problem.n_constraints else pred[:, :m]

        problem = genome_problem(self.space, m, n_constraints=self.problem.n_constraints, evaluate=evaluate)
        start = genomes[best_first(Y, self.inner_population, G)]
        if len(start) < self.inner_population:
            start = np.vstack([start, self.space.sample_unique(self._rng, self.inner_population - len(start),
                                                               exclude=self.space.keys(start))])
        algorithm = FastNSGA2(pop_size=self.inner_population, sampling=start,
                              **nsga2_operators(self.space, eliminate_duplicates=False))
        seed = int(np.random.SeedSequence([self.seed, self.step, 6]).generate_state(1)[0])
        minimize(problem, algorithm, termination=("n_eval", self.inner_evaluations), seed=seed, verbose=False)
        visited = _distinct(np.vstack(seen), self.space, self.known)
        pred = predict(visited)
        picked = visited[best_first(pred[:, :m], self.n_candidates, pred[:, m:])]
        taken = self.known | set(self.space.keys(picked))
        front = genomes[(pareto_ranks(Y, G) == 0) & (total_violation(G, len(G)) <= 0)]
        if not len(front):
            return picked
        extra = fresh_batch(self.space, self._rng, self.front_mutations, taken,
                            lambda n: self.space.mutate(front[self._rng.integers(len(front), size=n)], self._rng),
                            fill=False)
        return np.vstack([picked, extra])

    def _select(self, models: list[GP], cand: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Greedy batch by Monte Carlo EHVI x probability of feasibility, each pick fantasized
        at its posterior mean (Kriging believer) before the next."""
        m, ref = self.n_objectives, self.problem.reference_point
        X = self.space.encode(cand)
        post = [models[j].posterior(X, full_cov=True) for j in range(m)]
        mean = np.column_stack([p[0] for p in post])
        covs = [p[1] for p in post]
        pof = np.ones(len(cand))
        g_mean = np.zeros((len(cand), 0))
        if self.problem.n_constraints:
            gp = [models[j].posterior(X, full_cov=False) for j in range(m, len(models))]
            g_mean = np.column_stack([p[0] for p in gp])
            for mu, var in gp:
                pof *= norm.cdf(-mu / np.sqrt(np.clip(var, 1e-12, None)))
        feasible = total_violation(G, len(G)) <= 0
        front = Y[feasible]
        front = front[pareto_ranks(front) == 0] if len(front) else np.empty((0, m))
        Z = self._rng.standard_normal((self.mc_samples, m))
        free = np.ones(len(cand), dtype=bool)
        chosen: list[int] = []
        while len(chosen) < min(self.population, len(cand)):
            std = np.sqrt(np.clip(np.column_stack([np.diag(c) for c in covs]), 0, None))
            score = np.full(len(cand), -np.inf)
            score[free] = expected_hv_improvement(mean[free], std[free], front, ref, Z) * pof[free]
            j = int(np.argmax(score))
            if not score[j] > 0:
                break
            chosen.append(j)
            free[j] = False
            if (g_mean[j] <= 0).all():  # believed feasible: it joins the believed front
                front = np.vstack([front, mean[j]])
                front = front[pareto_ranks(front) == 0]
            for k, c in enumerate(covs):  # condition on observing it (noise included)
                covs[k] = c - np.outer(c[:, j], c[j]) / (c[j, j] + models[k].noise)
        rest = np.flatnonzero(free)
        need = self.population - len(chosen)
        if need > 0 and len(rest):
            order = best_first(mean[rest], need, g_mean[rest] if g_mean.shape[1] else None)
            chosen.extend(rest[order])
        return cand[np.array(chosen, dtype=np.int64)]


def _distinct(X: np.ndarray, space, known: set[str]) -> np.ndarray:
    """Distinct rows of ``X`` in order of first appearance, minus known networks."""
    rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
    _, first = np.unique(rows, return_index=True)
    X = X[np.sort(first)]
    keep = [i for i, k in enumerate(space.keys(X)) if k not in known]
    return X[keep]
