"""Hypervolume of validated fronts, with normalization fixed before any run.

Every objective is mapped to ``[0, 1]`` by bounds given in the experiment config
(0 at the best bound, 1 at the worst), the same for every strategy and seed, so
hypervolumes are comparable across runs. The reference point is given in that
normalized space (default: 1 for every objective); with it at 1, a hypervolume of 1
would mean a network at the best bound of every objective at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV

from linas.objectives import Objective


class Normalizer:
    """Maps raw objective values to normalized minimization values (0 best, 1 worst bound)."""

    def __init__(self, objectives: Sequence[Objective], bounds: Sequence[tuple[float, float]] | None = None
                 ) -> None:
        if bounds is None:  # the objectives carry them
            if any(o.bounds is None for o in objectives):
                raise ValueError("every objective needs bounds for a hypervolume")
            bounds = [o.bounds for o in objectives]
        if len(objectives) != len(bounds):
            raise ValueError("one (low, high) bound per objective is needed")
        self.objectives = tuple(objectives)
        lo = np.array([b[0] for b in bounds], dtype=float)
        hi = np.array([b[1] for b in bounds], dtype=float)
        if np.any(hi <= lo):
            raise ValueError("every bound needs low < high")
        maximize = np.array([o.direction == "max" for o in objectives])
        # Best and worst bound per objective, in the objective's own units.
        self.best = np.where(maximize, hi, lo)
        self.worst = np.where(maximize, lo, hi)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Normalize raw values ``(n, m)`` or ``(m,)``."""
        return (np.asarray(values, dtype=float) - self.best) / (self.worst - self.best)


def nondominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``points`` that no other row dominates (minimization)."""
    p = np.asarray(points, dtype=float)
    mask = np.ones(len(p), dtype=bool)
    for i in range(len(p)):
        if mask[i]:
            dominated = np.all(p[i] <= p, axis=1) & np.any(p[i] < p, axis=1)
            mask &= ~dominated
    return mask


class HypervolumeTracker:
    """Hypervolume of all points added so far, updated as each validated point arrives.

    Only a point that enters the non-dominated front changes the hypervolume; then the
    front (typically tens of points) is handed to pymoo's exact HV. A point dominated by
    the front costs one vectorized comparison, which keeps a 10,000-point run cheap.
    """

    def __init__(self, normalizer: Normalizer, reference_point: Sequence[float] | None = None) -> None:
        self.normalizer = normalizer
        m = len(normalizer.objectives)
        ref = np.ones(m) if reference_point is None else np.asarray(reference_point, dtype=float)
        if ref.shape != (m,):
            raise ValueError(f"the reference point needs {m} values")
        self.reference_point = ref
        self._indicator = HV(ref_point=ref)
        self.front = np.empty((0, m))
        self.value = 0.0
        self.history: list[float] = []

    def add(self, raw_values: Sequence[float], feasible: bool = True) -> float:
        """Add one validated point (raw objective values); returns the hypervolume after it.

        An infeasible point (outside a constraint) is counted in the history but never
        enters the front."""
        p = self.normalizer(np.asarray(raw_values, dtype=float))
        if feasible and np.all(p < self.reference_point) and not _weakly_dominated(self.front, p):
            keep = ~(np.all(p <= self.front, axis=1))
            self.front = np.vstack([self.front[keep], p])
            self.value = float(self._indicator(self.front))
        self.history.append(self.value)
        return self.value


def _weakly_dominated(front: np.ndarray, p: np.ndarray) -> bool:
    return bool(len(front)) and bool(np.any(np.all(front <= p, axis=1)))


def hypervolume(raw_values: np.ndarray, normalizer: Normalizer, reference_point: Sequence[float] | None = None
                ) -> float:
    """Hypervolume of a set of raw objective vectors (a one-shot convenience)."""
    tracker = HypervolumeTracker(normalizer, reference_point)
    for row in np.atleast_2d(raw_values):
        tracker.add(row)
    return tracker.value
