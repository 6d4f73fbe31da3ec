"""Multi-objective utilities: ranks, crowding, constraint domination, HV contributions."""

from __future__ import annotations

import numpy as np
import pytest

from linas.mo import (best_first, constraint_dominates, crowding_distance, dominates, hv_contributions,
                      hv_improvement, hypervolume_of, pareto_ranks)


def brute_force_ranks(F):
    """Peel non-dominated fronts one by one."""
    ranks = np.full(len(F), -1)
    r = 0
    while (ranks < 0).any():
        left = np.flatnonzero(ranks < 0)
        front = [i for i in left if not any(dominates(F[j], F[i]) for j in left if j != i)]
        ranks[front] = r
        r += 1
    return ranks


def brute_force_hv(points, ref, n=200_000, seed=0):
    """Monte Carlo estimate of the dominated volume in the box [0, ref]."""
    rng = np.random.default_rng(seed)
    u = rng.random((n, len(ref))) * ref
    dominated = np.zeros(n, dtype=bool)
    for p in points:
        dominated |= np.all(u >= p, axis=1)
    return dominated.mean() * np.prod(ref)


def test_pareto_ranks_peel_fronts_like_a_brute_force(rng):
    F = rng.integers(0, 8, size=(60, 2)).astype(float)
    assert np.array_equal(pareto_ranks(F), brute_force_ranks(F))


def test_infeasible_points_rank_after_feasible_ones_by_violation():
    F = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [2.0, 2.0]])
    G = np.array([[1.0], [-1.0], [3.0], [np.nan]])  # row 0 best F but infeasible; row 3 unknown
    ranks = pareto_ranks(F, G)
    assert ranks[1] == 0  # the only feasible point, although dominated by all others
    assert ranks[1] < ranks[0] < ranks[2] < ranks[3]


def test_failed_rows_rank_last():
    F = np.array([[np.nan, np.nan], [3.0, 3.0], [1.0, 1.0]])
    assert pareto_ranks(F).tolist() == [2, 1, 0]


def test_constraint_domination_follows_debs_rules():
    assert constraint_dominates([5, 5], [0, 0], 0.0, 1.0)  # feasible beats infeasible
    assert constraint_dominates([5, 5], [0, 0], 0.5, 1.0)  # smaller violation wins
    assert not constraint_dominates([1, 2], [2, 1])  # mutually non-dominated
    assert constraint_dominates([1, 1], [2, 1])


def test_crowding_is_infinite_at_the_extremes_and_larger_where_isolated():
    F = np.array([[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [4.0, 0.0]])
    c = crowding_distance(F)
    assert np.isinf(c[0]) and np.isinf(c[3])
    assert c[1] > 0 and c[2] > 0
    # Point 2 sits between 1 (close) and 3 (far); point 1 between 0 (far) and 2 (close): a
    # lone point added far from both is more isolated than either.
    c2 = crowding_distance(np.vstack([F, [[2.5, 1.5]]]))
    assert c2[4] > c2[1]


def test_best_first_takes_whole_fronts_then_the_most_isolated():
    F = np.array([[0, 3], [3, 0], [1, 2], [1.1, 1.9], [2, 1], [5, 5]], dtype=float)
    picked = best_first(F, 4)
    assert {0, 1}.issubset(picked) and 5 not in picked
    assert len(picked) == 4 == len(set(picked))
    assert best_first(F, 10).tolist()[-1] == 5  # fewer rows than asked: all, best first


def test_hypervolume_and_contributions_match_monte_carlo():
    P = np.array([[0.1, 0.8], [0.4, 0.4], [0.7, 0.2]])
    ref = [1.0, 1.0]
    assert hypervolume_of(P, ref) == pytest.approx(brute_force_hv(P, np.array(ref)), abs=3e-3)
    contrib = hv_contributions(P, ref)
    for i in range(3):
        rest = np.delete(P, i, axis=0)
        assert contrib[i] == pytest.approx(hypervolume_of(P, ref) - hypervolume_of(rest, ref))
    # The middle point's exclusive box: [0.4, 0.7) x [0.4, 0.8)
    assert contrib[1] == pytest.approx(0.3 * 0.4)


def test_hv_improvement_is_zero_for_dominated_candidates():
    front = np.array([[0.2, 0.2]])
    gains = hv_improvement(front, np.array([[0.5, 0.5], [0.1, 0.9], [1.2, 0.0]]), [1.0, 1.0])
    assert gains[0] == 0.0 and gains[1] == pytest.approx(0.1 * 0.1) and gains[2] == 0.0


def test_ranks_are_permutation_invariant(rng):
    F = rng.random((30, 3))
    perm = rng.permutation(30)
    assert np.array_equal(pareto_ranks(F)[perm], pareto_ranks(F[perm]))
