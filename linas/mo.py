"""Multi-objective building blocks shared by strategies: ranking, crowding, hypervolume
contributions and improvements (exact, and expected under Gaussian predictions) and
constraint domination (all minimization, rows are points).

Failed evaluations (NaN rows) rank behind every measured point; with constraints,
feasible points rank before infeasible ones, which are ordered by total violation
(Deb's constraint domination, as pymoo and NSGA-II use it).

Example::

    order = best_first(F, n=10, G=G)            # 10 indices: whole fronts, last one by crowding
    ranks = pareto_ranks(F)                     # 0 for the non-dominated front, 1 for the next...
    contrib = hv_contributions(normalized_front, reference_point)
    ehvi = expected_hv_improvement(mean, std, front, reference_point, Z)   # Monte Carlo, shared draws Z
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def total_violation(G: np.ndarray | None, n: int) -> np.ndarray:
    """Sum of positive constraint violations per row (0 when feasible); NaN -> inf."""
    if G is None or np.size(G) == 0:
        return np.zeros(n)
    G = np.asarray(G, dtype=float).reshape(n, -1)
    cv = np.clip(np.nan_to_num(G, nan=np.inf), 0.0, None).sum(axis=1)
    return cv


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Pareto domination of point ``a`` over ``b`` (minimization)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def constraint_dominates(fa: np.ndarray, fb: np.ndarray, cva: float = 0.0, cvb: float = 0.0) -> bool:
    """Deb's rule: a feasible point beats an infeasible one, the smaller violation beats
    the larger among infeasible ones, and Pareto domination decides among feasible ones."""
    if cva > 0 or cvb > 0:
        return cva < cvb
    return dominates(fa, fb)


def pareto_ranks(F: np.ndarray, G: np.ndarray | None = None, n_stop: int | None = None) -> np.ndarray:
    """Non-dominated rank of every row (0 = first front) under constraint domination.

    Measured feasible rows are sorted into fronts; infeasible rows follow, one rank per
    distinct total violation; failed (NaN) rows come last. With ``n_stop``, sorting stops
    once that many feasible rows are ranked and the rest of them share the next rank
    (enough to pick the best ``n_stop``, and much faster on many rows).
    """
    F = np.asarray(F, dtype=float).reshape(len(F), -1)
    n = len(F)
    ranks = np.full(n, -1, dtype=np.int64)
    cv = total_violation(G, n)
    failed = np.isnan(F).any(axis=1)
    ok = ~failed & (cv <= 0)
    idx = np.flatnonzero(ok)
    next_rank = 0
    if len(idx):
        fronts = NonDominatedSorting().do(F[idx], n_stop_if_ranked=n_stop or len(idx))
        sub = np.full(len(idx), len(fronts), dtype=np.int64)
        for r, front in enumerate(fronts):
            sub[front] = r
        ranks[idx] = sub
        next_rank = int(sub.max()) + 1
    infeasible = np.flatnonzero(~failed & (cv > 0))
    if len(infeasible):
        _, inv = np.unique(cv[infeasible], return_inverse=True)
        ranks[infeasible] = next_rank + inv
        next_rank = int(ranks[infeasible].max()) + 1
    ranks[failed] = next_rank
    return ranks


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front (inf at the extremes)."""
    F = np.asarray(F, dtype=float).reshape(len(F), -1)
    if len(F) <= 2:
        return np.full(len(F), np.inf)
    return calc_crowding_distance(F)


def best_first(F: np.ndarray, n: int, G: np.ndarray | None = None) -> np.ndarray:
    """Indices of up to ``n`` rows, best first: whole fronts in rank order (constraint
    domination), the last one cut by crowding distance (most isolated first)."""
    F = np.asarray(F, dtype=float).reshape(len(F), -1)
    ranks = pareto_ranks(F, G, n_stop=n)
    picked: list[int] = []
    for r in np.unique(ranks):
        front = np.flatnonzero(ranks == r)
        if len(picked) + len(front) <= n:
            picked.extend(front)
            if len(picked) == n:
                break
            continue
        crowding = crowding_distance(np.nan_to_num(F[front], nan=np.inf))
        order = np.argsort(-crowding, kind="stable")
        picked.extend(front[order[: n - len(picked)]])
        break
    return np.array(picked, dtype=np.int64)


def hypervolume_of(points: np.ndarray, reference_point: Sequence[float]) -> float:
    """Hypervolume of normalized minimization points dominated-region-wise below ``reference_point``."""
    ref = np.asarray(reference_point, dtype=float)
    P = np.asarray(points, dtype=float).reshape(-1, len(ref))
    P = P[np.all(P < ref, axis=1)]
    return float(HV(ref_point=ref)(P)) if len(P) else 0.0


def hv_contributions(points: np.ndarray, reference_point: Sequence[float]) -> np.ndarray:
    """Exclusive hypervolume contribution of each point: HV(all) - HV(all without it)."""
    P = np.asarray(points, dtype=float).reshape(-1, len(reference_point))
    total = hypervolume_of(P, reference_point)
    return np.array([total - hypervolume_of(np.delete(P, i, axis=0), reference_point) for i in range(len(P))])


def hv_improvement(front: np.ndarray, candidates: np.ndarray, reference_point: Sequence[float]) -> np.ndarray:
    """Hypervolume each candidate alone would add to ``front`` (normalized minimization)."""
    base = hypervolume_of(front, reference_point)
    F = np.asarray(front, dtype=float).reshape(-1, len(reference_point))
    return np.array([hypervolume_of(np.vstack([F, c]), reference_point) - base
                     for c in np.asarray(candidates, dtype=float).reshape(-1, len(reference_point))])


def hv_improvement_2d(points: np.ndarray, front: np.ndarray, reference_point) -> np.ndarray:
    """Exact hypervolume improvement of each 2-objective point (any leading shape) over
    ``front`` (minimization), in O(log |front|) per point.

    The improvement of ``(a, b)`` is the integral over ``x`` in ``[a, r1]`` of
    ``max(0, s(x) - b)``, ``s`` being the front's staircase (the lowest ``y`` of the front
    points left of ``x``, ``r2`` where there is none); the integrand is positive up to the
    first front point with ``y <= b``, so it is a difference of the staircase's running
    integral ``P`` there and at ``a``.
    """
    r = np.asarray(reference_point, dtype=float)
    a, b = points[..., 0], points[..., 1]
    F = np.asarray(front, dtype=float).reshape(-1, 2)
    F = F[np.all(F < r, axis=1)]
    if len(F) == 0:
        return np.clip(r[0] - a, 0, None) * np.clip(r[1] - b, 0, None)
    F = F[pareto_ranks(F) == 0]
    F = F[np.argsort(F[:, 0], kind="stable")]
    x, h = F[:, 0], F[:, 1]  # x ascending, heights h descending
    widths = np.diff(np.append(x, r[0]))
    C = np.concatenate([[0.0], np.cumsum(h * widths)])[:-1]  # P(x_i)

    def P(t: np.ndarray) -> np.ndarray:  # integral of the staircase from x_1 to t (t <= r1)
        i = np.searchsorted(x, t, side="right") - 1
        inside = i >= 0
        j = np.clip(i, 0, None)
        return np.where(inside, C[j] + h[j] * (t - x[j]), (t - x[0]) * r[1])

    n_above = np.searchsorted(-h, -b, side="left")  # front points with h > b come first
    c = np.where(n_above < len(x), x[np.clip(n_above, 0, len(x) - 1)], r[0])
    c = np.minimum(c, r[0])
    a_ = np.minimum(a, c)
    gain = P(c) - P(a_) - b * (c - a_)
    return np.clip(np.where(a < c, gain, 0.0), 0, None)


def expected_hv_improvement(mean: np.ndarray, std: np.ndarray, front: np.ndarray, reference_point,
                            Z: np.ndarray) -> np.ndarray:
    """Monte Carlo EHVI of independent Gaussian candidates: ``mean``/``std`` (N, m), ``Z``
    (S, m) standard normal draws shared by all candidates (common random numbers)."""
    samples = mean[:, None, :] + std[:, None, :] * Z[None, :, :]
    if mean.shape[1] == 2:
        return hv_improvement_2d(samples, front, reference_point).mean(axis=1)
    return np.array([hv_improvement(front, s, reference_point).mean() for s in samples])
