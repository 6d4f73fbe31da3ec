"""Aging evolution's core: the oldest dies, the tournament picks the best-ranked sample member."""

from __future__ import annotations

import numpy as np

from linas.strategies import make_strategy
from linas.testing import two_objectives


def _strategy(space, **options):
    return make_strategy("aging_evolution", two_objectives(space), 0,
                         {"population": 4, "population_size": 6, "sample_size": 3, **options})


def test_the_oldest_die_and_failures_never_join(toy_space):
    s = _strategy(toy_space)
    first = s.ask()
    s.tell(first, np.random.default_rng(0).random((4, 2)))
    assert list(s.alive()) == [0, 1, 2, 3]  # not yet full: nobody dies
    second = s.ask()
    F = np.random.default_rng(1).random((4, 2))
    F[1] = np.nan  # a failed child never joins
    s.tell(second, F)
    assert list(s.alive()) == [0, 1, 2, 3, 4, 6, 7][-6:]  # 6 alive: the oldest (0) died
    assert 0 not in s.alive() and 5 not in s.alive()
    third = s.ask()
    s.tell(third, np.zeros((4, 2)) + 0.5)
    assert list(s.alive()) == [4, 6, 7, 8, 9, 10, 11][-6:]


def test_the_tournament_picks_the_rank_0_member_of_the_sample(toy_space):
    s = _strategy(toy_space)
    g = s.ask()
    # Member 2 dominates 0 and 1; member 3 is on the front but not in the sample.
    s.tell(g, np.array([[0.5, 0.5], [0.6, 0.4 + 0.3], [0.2, 0.3], [0.0, 0.9]]))
    ranks, score = s.fitness(s.alive())
    assert list(ranks) == [1, 2, 0, 0]
    assert s.tournament(np.array([0, 1, 2]), ranks, score) == 2
    # Same rank: crowding decides (both extremes of a 2-point front are infinitely isolated,
    # so the first drawn wins); hv_contribution prefers the larger exclusive contribution.
    assert s.tournament(np.array([3, 2]), ranks, score) == 3
    hv = _strategy(toy_space, selection="hv_contribution")
    hv.tell(g, np.array([[0.5, 0.5], [0.6, 0.7], [0.2, 0.3], [0.0, 0.9]]))
    ranks, score = hv.fitness(hv.alive())
    assert score[2] > score[3]  # (0.2, 0.3) adds far more than (0.0, 0.9)
    assert hv.tournament(np.array([3, 2]), ranks, score) == 2


def test_children_are_new_distinct_mutations(toy_space):
    s = _strategy(toy_space)
    g = s.ask()
    s.tell(g, np.random.default_rng(0).random((4, 2)))
    children = s.ask()
    keys = toy_space.keys(children)
    assert len(set(keys)) == len(keys) == 4 and not set(keys) & s.known
