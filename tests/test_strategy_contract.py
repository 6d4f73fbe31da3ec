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
from linas.errors import ConfigError
from linas.evaluator import Evaluator
from linas.features import FeatureSource
from linas.objectives import Constraint, Objective
from linas.runner import run_search
from linas.strategies import make_strategy, strategies
from linas.strategies.base import initial_population
from linas.testing import run_spec

from helpers import Counting, archived_rows, search_process, synthetic_config

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


def needs_features(name: str) -> bool:
    """Whether the strategy (with its quick options) needs the experiment's feature source."""
    try:
        return strategies.get(name).check_features(strategies.options(name, options(name), n_args=2), None)
    except ConfigError:
        return True


class Shapes(Evaluator):
    """Cheap features of any space, for strategies that need a feature source: the networks'
    size (sum of their ordinal encoding) and a fixed random projection of it."""

    metrics = (Objective("signal", "max"), Objective("size", "min"))

    @property
    def identity(self):
        return "shapes"

    def evaluate_one(self, config):
        x = self.space.encode(self.space.from_config(config)[None], "ordinal")[0]
        w = np.random.default_rng(7).standard_normal(len(x))
        return {"signal": float(x @ w), "size": float(x.sum())}


def problem_for(name, spec, space):
    """The run's problem, with a feature source for the strategies that need one."""
    return spec.problem(space, FeatureSource(Shapes(space), ["signal", "size"]) if needs_features(name) else None)


#: The feature section of an experiment config for the strategies that need one (a registered analytic evaluator).
FEATURES = {"name": "synthetic_mbv3", "options": {"noise": 1.0, "noise_seed": 7}, "metrics": ["top1", "macs"]}



class Toy(Evaluator):
    """Closed-form metrics on the toy space (1,296 networks), where repeats are frequent."""

    metrics = Counting.metrics
    supports_fidelity = True

    def __init__(self, space):
        super().__init__(space)
        self.calls: Counter = Counter()

    @property
    def identity(self):
        return "toy"

    def evaluate_one(self, config, fidelity=1.0):
        self.calls[self.space.key(self.space.from_config(config)), fidelity] += 1
        k = sum(v for n, v in config.items() if n.startswith("k"))
        return {"top1": 60 + k / 2 + config["d0"] - (1 - fidelity) * config["d1"], "latency": 10 + k + 3 * config["d1"]}


def validations(calls: Counter) -> int:
    """Full-fidelity evaluations counted by an evaluator's ``calls``."""
    return sum(n for (_, fidelity), n in calls.items() if fidelity == 1)


def assert_budget_spent(result, budget: int) -> None:
    """Validations plus the fidelity of each low-fidelity evaluation: the budget exactly, or
    (where evaluations cost fractions) as close as one more evaluation would overspend."""
    if result.spent == result.n_validated:
        assert result.n_validated == budget
    else:
        assert budget - 1 < result.spent <= budget + 1e-9


def run(tmp_path, name, evaluator, budget, seed=0, constraints=(), sub="run"):
    spec = run_spec(name, seed, budget, evaluator.metrics, BOUNDS, options(name),
                    constraints=constraints_for(name, constraints), space=evaluator.space)
    strategy = make_strategy(name, problem_for(name, spec, evaluator.space), seed, options(name))
    return run_search(tmp_path / sub, spec, evaluator.space, evaluator, strategy, progress=False)


@pytest.mark.parametrize("name", NAMES)
def test_first_batch_is_the_shared_initial_population(name, synthetic):
    spec = run_spec(name, 3, 10, synthetic.metrics[:2], BOUNDS, constraints=constraints_for(name))
    first = make_strategy(name, problem_for(name, spec, synthetic.space), 3, options(name)).ask()
    expected = initial_population(synthetic.space, 3, POPULATION)
    assert synthetic.space.keys(first) == synthetic.space.keys(expected)


@pytest.mark.parametrize("name", NAMES)
def test_the_budget_is_exact_and_nothing_is_validated_twice(name, tmp_path, toy_space):
    evaluator = Toy(toy_space)
    result = run(tmp_path, name, evaluator, budget=73)
    assert_budget_spent(result, 73)
    assert result.n_validated == validations(evaluator.calls)
    assert max(evaluator.calls.values()) == 1


@pytest.mark.parametrize("name", NAMES)
def test_failed_evaluations_are_stored_and_replaced(name, tmp_path, synthetic):
    evaluator = Counting(synthetic, fail_every=4)
    result = run(tmp_path, name, evaluator, budget=45)
    archive = RunArchive.open_existing(result.run_dir)
    records = archive.records()
    failed = [r for r in records + archive.low_fidelity_records() if not r.ok]  # at any fidelity
    assert failed and all(r.error == "RuntimeError: broken network" for r in failed)
    assert_budget_spent(result, 45)
    assert result.n_validated == sum(r.ok for r in records)
    assert max(evaluator.calls.values()) == 1


@pytest.mark.parametrize("name", NAMES)
def test_constraints_keep_infeasible_networks_off_the_front(name, tmp_path, synthetic):
    limit = Constraint("latency", max=60.0)
    result = run(tmp_path, name, Counting(synthetic), budget=40, constraints=[limit])
    records = RunArchive.open_existing(result.run_dir).records()
    assert_budget_spent(result, 40)
    infeasible = [r for r in records if r.ok and r.metrics["latency"] > 60.0]
    feasible = [r for r in records if r.ok and r.metrics["latency"] <= 60.0]
    # The synthetic space has both at this limit (a multi-fidelity strategy may keep the
    # infeasible ones to its cheaper evaluations).
    cheaper = RunArchive.open_existing(result.run_dir).low_fidelity_records()
    assert feasible and (infeasible or [r for r in cheaper if r.ok and r.metrics["latency"] > 60.0])
    # The hypervolume moves only when a feasible network arrives.
    hv = [0.0] + [r.hypervolume for r in records if r.ok]
    for before, r, after in zip(hv, [r for r in records if r.ok], hv[1:]):
        if r.metrics["latency"] > 60.0:
            assert after == before


def _contents(run_dir):
    archive = RunArchive.open_existing(run_dir)
    return ([(r.key, r.status, r.metrics, r.n_validated, r.hypervolume) for r in archive.records()]
            + [(r.key, r.fidelity, r.status, r.metrics, r.n_validated) for r in archive.low_fidelity_records()])


def _stored(run_dir) -> int:
    """Evaluations stored so far, at every fidelity (read without disturbing the search)."""
    rows = archived_rows(run_dir)
    try:
        return rows + len(RunArchive.open_existing(run_dir).low_fidelity_records()) if rows else 0
    except Exception:  # noqa: BLE001 - the archive is being written: count the validations alone
        return rows


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_run_killed_and_resumed_equals_one_run_and_two_processes_agree(name, tmp_path):
    """Determinism across processes (two uninterrupted runs) and resume after SIGKILL."""
    synthetic_config(tmp_path, strategies=[{"name": name, "options": options(name)}], budget=55,
                     evaluator={"name": "synthetic_mbv3", "options": {"noise": 0.1, "delay": 0.03}},
                     constraints=[c.to_dict() for c in constraints_for(name)],
                     **({"features": FEATURES} if needs_features(name) else {}))
    config = tmp_path / "exp.yaml"
    killed = search_process(config, tmp_path / "killed")
    target = tmp_path / "killed" / name / "seed0"
    deadline = time.time() + 120
    while _stored(target) < 27 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_at = _stored(target)
    resumed = search_process(config, tmp_path / "killed")
    a, b = search_process(config, tmp_path / "a"), search_process(config, tmp_path / "b")
    for p in (resumed, a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    straight = _contents(tmp_path / "a" / name / "seed0")
    assert 0 < killed_at < len(straight), "the kill must land in the middle of the run"
    assert len(straight) >= 55 or RunArchive.open_existing(tmp_path / "a" / name / "seed0").low_fidelity_records()
    assert _contents(tmp_path / "b" / name / "seed0") == straight
    assert _contents(target) == straight


@pytest.mark.parametrize("name", NAMES)
def test_strategies_see_the_problem(name, synthetic):
    """Objectives (direction and bounds), reference point and constraints reach the strategy."""
    spec = run_spec(name, 0, 10, synthetic.metrics[:2], BOUNDS, constraints=[Constraint("latency", max=50.0)],
                    reference_point=[1.1, 1.1])
    strategy = make_strategy(name, problem_for(name, spec, synthetic.space), 0, options(name))
    assert strategy.problem.objectives[0].bounds == (60.0, 80.0)
    assert strategy.problem.reference_point == (1.1, 1.1)
    assert strategy.problem.constraints == (Constraint("latency", max=50.0),)
    g = strategy.ask()
    validated = strategy.fidelity >= 1  # a lower-fidelity batch is not remembered as validated
    F = np.column_stack([-np.full(len(g), 70.0), np.full(len(g), 40.0)])
    strategy.tell(g, F, np.full((len(g), 1), -10.0))
    assert strategy.G.shape == (len(g) if validated else 0, 1)
