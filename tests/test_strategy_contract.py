"""The contract every registered strategy fulfils; a new strategy is checked by it for free.

Each test is parametrized over ``strategies.names()``, run with the strategy's
``quick_options`` and a small population.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import numpy as np
import pytest

from linas.archive import RunArchive
from linas.evaluator import Evaluator
from linas.objectives import Constraint, Objective
from linas.runner import run_search
from linas.strategies import make_strategy, strategies
from linas.strategies.base import initial_population
from linas.testing import run_spec

from helpers import archived_rows, search_process, synthetic_config

NAMES = strategies.names()
POPULATION = 10
BOUNDS = [(60, 80), (10, 160)]


def options(name: str) -> dict:
    return {**strategies.get(name).quick_options, "population": POPULATION}


#: The constraint given to strategies that need one (``requires_constraints``, e.g. ofa_evolution).
LIMIT = Constraint("latency", max=60.0)


def constraints_for(name: str, constraints=()) -> list:
    if constraints or not strategies.get(name).requires_constraints:
        return list(constraints)
    return [LIMIT] * strategies.get(name).requires_constraints


class Counting(Evaluator):
    """Counts validations per network; fails the networks whose key hash hits ``fail_every``."""

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"))

    def __init__(self, inner, fail_every: int = 0):
        super().__init__(inner.space)
        self.inner, self.fail_every = inner, fail_every
        self.calls: Counter = Counter()

    @property
    def identity(self):
        return f"counting:{self.inner.identity}:{self.fail_every}"

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        self.calls[key] += 1
        if self.fail_every and sum(map(ord, key)) % self.fail_every == 0:
            raise RuntimeError("broken network")
        out = self.inner.evaluate_one(config)
        return {"top1": out["top1"], "latency": out["latency"]}


class Toy(Evaluator):
    """Closed-form metrics on the toy space (1,296 networks), where repeats are frequent."""

    metrics = Counting.metrics

    def __init__(self, space):
        super().__init__(space)
        self.calls: Counter = Counter()

    @property
    def identity(self):
        return "toy"

    def evaluate_one(self, config):
        self.calls[self.space.key(self.space.from_config(config))] += 1
        k = sum(v for n, v in config.items() if n.startswith("k"))
        return {"top1": 60 + k / 2 + config["d0"], "latency": 10 + k + 3 * config["d1"]}


def run(tmp_path, name, evaluator, budget, seed=0, constraints=(), sub="run"):
    spec = run_spec(name, seed, budget, evaluator.metrics, BOUNDS, options(name),
                    constraints=constraints_for(name, constraints), space=evaluator.space)
    strategy = make_strategy(name, spec.problem(evaluator.space), seed, options(name))
    return run_search(tmp_path / sub, spec, evaluator.space, evaluator, strategy, progress=False)


@pytest.mark.parametrize("name", NAMES)
def test_first_batch_is_the_shared_initial_population(name, synthetic):
    spec = run_spec(name, 3, 10, synthetic.metrics[:2], BOUNDS, constraints=constraints_for(name))
    first = make_strategy(name, spec.problem(synthetic.space), 3, options(name)).ask()
    expected = initial_population(synthetic.space, 3, POPULATION)
    assert synthetic.space.keys(first) == synthetic.space.keys(expected)


@pytest.mark.parametrize("name", NAMES)
def test_the_budget_is_exact_and_nothing_is_validated_twice(name, tmp_path, toy_space):
    evaluator = Toy(toy_space)
    result = run(tmp_path, name, evaluator, budget=73)
    assert result.n_validated == 73 == sum(evaluator.calls.values())
    assert max(evaluator.calls.values()) == 1


@pytest.mark.parametrize("name", NAMES)
def test_failed_evaluations_are_stored_and_replaced(name, tmp_path, synthetic):
    evaluator = Counting(synthetic, fail_every=4)
    result = run(tmp_path, name, evaluator, budget=45)
    records = RunArchive.open_existing(result.run_dir).records()
    failed = [r for r in records if not r.ok]
    assert failed and all(r.error == "RuntimeError: broken network" for r in failed)
    assert result.n_validated == 45 == sum(r.ok for r in records)
    assert max(evaluator.calls.values()) == 1


@pytest.mark.parametrize("name", NAMES)
def test_constraints_keep_infeasible_networks_off_the_front(name, tmp_path, synthetic):
    limit = Constraint("latency", max=60.0)
    result = run(tmp_path, name, Counting(synthetic), budget=40, constraints=[limit])
    records = RunArchive.open_existing(result.run_dir).records()
    assert result.n_validated == 40
    infeasible = [r for r in records if r.ok and r.metrics["latency"] > 60.0]
    feasible = [r for r in records if r.ok and r.metrics["latency"] <= 60.0]
    assert infeasible and feasible  # the synthetic space has both at this limit
    # The hypervolume moves only when a feasible network arrives.
    hv = [0.0] + [r.hypervolume for r in records if r.ok]
    for before, r, after in zip(hv, [r for r in records if r.ok], hv[1:]):
        if r.metrics["latency"] > 60.0:
            assert after == before


def _contents(run_dir):
    return [(r.key, r.status, r.metrics, r.n_validated, r.hypervolume) for r in RunArchive.open_existing(run_dir).records()]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_run_killed_and_resumed_equals_one_run_and_two_processes_agree(name, tmp_path):
    """Determinism across processes (two uninterrupted runs) and resume after SIGKILL."""
    synthetic_config(tmp_path, strategies=[{"name": name, "options": options(name)}], budget=55,
                     evaluator={"name": "synthetic_mbv3", "options": {"noise": 0.1, "delay": 0.03}},
                     constraints=[c.to_dict() for c in constraints_for(name)])
    config = tmp_path / "exp.yaml"
    killed = search_process(config, tmp_path / "killed")
    target = tmp_path / "killed" / name / "seed0"
    deadline = time.time() + 120
    while archived_rows(target) < 27 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert 0 < archived_rows(target) < 55, "the kill must land in the middle of the run"
    resumed = search_process(config, tmp_path / "killed")
    a, b = search_process(config, tmp_path / "a"), search_process(config, tmp_path / "b")
    for p in (resumed, a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    straight = _contents(tmp_path / "a" / name / "seed0")
    assert len(straight) >= 55
    assert _contents(tmp_path / "b" / name / "seed0") == straight
    assert _contents(target) == straight


@pytest.mark.parametrize("name", NAMES)
def test_strategies_see_the_problem(name, synthetic):
    """Objectives (direction and bounds), reference point and constraints reach the strategy."""
    spec = run_spec(name, 0, 10, synthetic.metrics[:2], BOUNDS, constraints=[Constraint("latency", max=50.0)],
                    reference_point=[1.1, 1.1])
    strategy = make_strategy(name, spec.problem(synthetic.space), 0, options(name))
    assert strategy.problem.objectives[0].bounds == (60.0, 80.0)
    assert strategy.problem.reference_point == (1.1, 1.1)
    assert strategy.problem.constraints == (Constraint("latency", max=50.0),)
    g = strategy.ask()
    F = np.column_stack([-np.full(len(g), 70.0), np.full(len(g), 40.0)])
    strategy.tell(g, F, np.full((len(g), 1), -10.0))
    assert strategy.G.shape == (len(g), 1)
