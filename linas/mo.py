"""Multi-objective building blocks shared by strategies: ranking, crowding, hypervolume
contributions and constraint domination (all minimization, rows are points).

Failed evaluations (NaN rows) rank behind every measured point; with constraints,
feasible points rank before infeasible ones, which are ordered by total violation
(Deb's constraint domination, as pymoo and NSGA-II use it).

Example::

    order = best_first(F, n=10, G=G)            # 10 indices: whole fronts, last one by crowding
    ranks = pareto_ranks(F)                     # 0 for the non-dominated front, 1 for the next...
    contrib = hv_contributions(normalized_front, reference_point)
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
