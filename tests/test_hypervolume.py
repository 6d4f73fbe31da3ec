"""Hypervolume: equal to brute force, incremental equals one-shot, fixed normalization."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from linas.hypervolume import HypervolumeTracker, Normalizer, hypervolume, nondominated
from linas.objectives import Objective

MIN2 = [Objective("a", "min"), Objective("b", "min")]
MIN3 = MIN2 + [Objective("c", "min")]


def brute_force_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over every subset of boxes [p, ref] (exact, exponential)."""
    pts = [p for p in points if np.all(p < ref)]
    total = 0.0
    for r in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, r):
            corner = np.max(subset, axis=0)
            total += (-1) ** (r + 1) * np.prod(ref - corner)
    return total


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_hv_equals_brute_force_on_small_fronts(m, seed):
    rng = np.random.default_rng(seed)
    points = rng.random((8, m)) * 1.2  # some beyond the reference point
    ref = np.ones(m)
    objectives = (MIN2 if m == 2 else MIN3)
    normalizer = Normalizer(objectives, [(0.0, 1.0)] * m)
    assert hypervolume(points, normalizer, ref) == pytest.approx(brute_force_hv(points, ref), abs=1e-12)


def test_incremental_history_equals_recomputing_from_scratch():
    rng = np.random.default_rng(0)
    points = rng.random((60, 2))
    tracker = HypervolumeTracker(Normalizer(MIN2, [(0, 1), (0, 1)]))
    for p in points:
        tracker.add(p)
    for k in (1, 5, 17, 60):
        assert tracker.history[k - 1] == pytest.approx(brute_force_hv(points[:k][nondominated(points[:k])],
                                                                      np.ones(2)))


def test_history_never_decreases():
    rng = np.random.default_rng(3)
    tracker = HypervolumeTracker(Normalizer(MIN3, [(0, 1)] * 3))
    for p in rng.random((200, 3)):
        tracker.add(p)
    assert np.all(np.diff(tracker.history) >= 0)


def test_maximized_objectives_are_normalized_from_their_best_bound():
    normalizer = Normalizer([Objective("acc", "max"), Objective("lat", "min")], [(60, 80), (10, 110)])
    assert np.allclose(normalizer([80, 10]), [0, 0])
    assert np.allclose(normalizer([60, 110]), [1, 1])
    assert np.allclose(normalizer([70, 60]), [0.5, 0.5])
    # A single network at (70 %, 60 ms) dominates a quarter of the normalized box.
    assert hypervolume(np.array([[70, 60]]), normalizer) == pytest.approx(0.25)


def test_points_beyond_the_reference_point_add_nothing():
    tracker = HypervolumeTracker(Normalizer(MIN2, [(0, 1), (0, 1)]), reference_point=[1.0, 1.0])
    assert tracker.add([1.5, 0.1]) == 0.0
    assert tracker.add([0.5, 0.5]) == pytest.approx(0.25)
    assert tracker.add([0.5, 1.2]) == pytest.approx(0.25)


def test_normalization_does_not_depend_on_the_points_seen():
    normalizer = Normalizer(MIN2, [(0, 10), (0, 10)])
    a = hypervolume(np.array([[2.0, 3.0]]), normalizer)
    b = hypervolume(np.array([[2.0, 3.0], [9.0, 9.5]]), normalizer)
    assert a == pytest.approx(0.8 * 0.7)
    assert b == pytest.approx(a)  # the second point is dominated: nothing rescales


def test_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="low < high"):
        Normalizer(MIN2, [(1, 0), (0, 1)])
    with pytest.raises(ValueError, match="reference point needs 2"):
        HypervolumeTracker(Normalizer(MIN2, [(0, 1), (0, 1)]), [1.0])
