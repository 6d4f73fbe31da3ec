"""REINFORCE's core: the policy gradient raises the probability of rewarded choices."""

from __future__ import annotations

import numpy as np
import pytest

from linas.space import SearchSpace, Variable
from linas.strategies import make_strategy
from linas.testing import two_objectives


def _space():
    return SearchSpace("pg", [Variable("a", (0, 1, 2)), Variable("b", (0, 1))])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_rewarded_choice_becomes_more_likely(optimizer):
    s = make_strategy("reinforce", two_objectives(_space()), 0, {"population": 6, "optimizer": optimizer})
    genomes = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
    before = s.probabilities()
    s.baseline = 0.0
    s.update(genomes, np.where(genomes[:, 0] == 1, 1.0, -1.0))  # a=1 rewarded, b indifferent
    after = s.probabilities()
    assert after[0][1] > before[0][1]
    assert after[0][0] < before[0][0] and after[0][2] < before[0][2]
    np.testing.assert_allclose(after[1], before[1])  # b's choices earned the same


def test_a_penalized_choice_becomes_less_likely_and_failures_teach_nothing():
    s = make_strategy("reinforce", two_objectives(_space()), 0, {"population": 3, "optimizer": "sgd"})
    s.baseline = 0.0
    s.update(np.array([[0, 1], [1, 1], [2, 0]]), np.array([np.nan, np.nan, np.nan]))
    np.testing.assert_array_equal(s.logits, 0.0)
    s.update(np.array([[0, 1]]), np.array([-1.0]))
    assert s.probabilities()[1][1] < 0.5 and s.probabilities()[0][0] < 1 / 3


def test_tell_rewards_the_better_network_and_batches_are_new():
    space = _space()
    s = make_strategy("reinforce", two_objectives(space), 0, {"population": 2, "learning_rate": 0.5})
    first = np.array([[1, 0], [2, 1]])
    s.tell(first, np.array([[0.1, 0.1], [0.9, 0.9]]))  # [1, 0] dominates [2, 1]
    p = s.probabilities()
    assert p[0][1] > p[0][2] and p[1][0] > p[1][1]
    batch = s.ask()
    assert len(batch) == 2 and not set(space.keys(batch)) & s.known
    assert len(set(space.keys(batch))) == 2


def test_state_round_trips_through_json():
    import json

    space = _space()
    a = make_strategy("reinforce", two_objectives(space), 0, {"population": 2})
    a.tell(np.array([[1, 0], [2, 1]]), np.array([[0.1, 0.1], [0.9, 0.9]]))
    b = make_strategy("reinforce", two_objectives(space), 0, {"population": 2})
    b.restore(a.genomes, a.F, a.G, a.step, json.loads(json.dumps(a.state_dict())))
    np.testing.assert_array_equal(a.ask(), b.ask())
