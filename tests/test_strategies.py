"""Strategies: shared initial population, determinism, LINAS proposals."""

from __future__ import annotations

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import to_minimization
from linas.spec import Problem
from linas.strategies import make_strategy, strategies

ALL = ["random", "nsga2", "linas"]


def measure(evaluator, genomes):
    space = evaluator.space
    return to_minimization(evaluator.metrics[:2], [evaluator.evaluate_one(space.to_config(g)) for g in genomes])


def test_every_registered_strategy_is_discoverable():
    assert set(ALL) <= set(strategies.names())


@pytest.mark.parametrize("seed", [0, 7])
def test_all_strategies_start_from_the_same_population(mbv3_space, seed):
    first = [make_strategy(n, Problem.simple(mbv3_space, 2), seed, {"population": 30}).ask() for n in ALL]
    keys = [mbv3_space.keys(b) for b in first]
    assert keys[0] == keys[1] == keys[2]
    assert len(set(keys[0])) == 30


def test_the_initial_population_depends_on_the_seed(mbv3_space):
    a = make_strategy("random", Problem.simple(mbv3_space, 2), 0, {}).ask()
    b = make_strategy("random", Problem.simple(mbv3_space, 2), 1, {}).ask()
    assert set(mbv3_space.keys(a)) != set(mbv3_space.keys(b))


@pytest.mark.parametrize("name", ALL)
def test_strategies_are_deterministic_given_seed_and_results(synthetic, name):
    options = {"population": 20, "inner_evaluations": 500} if name == "linas" else {"population": 20}

    def trajectory():
        s = make_strategy(name, Problem.simple(synthetic.space, 2), 3, options)
        out = []
        for _ in range(3):
            g = s.ask()
            out.append(synthetic.space.keys(g))
            s.tell(g, measure(synthetic, g))
        return out

    assert trajectory() == trajectory()


def test_linas_never_proposes_a_validated_network(synthetic):
    s = make_strategy("linas", Problem.simple(synthetic.space, 2), 0, {"population": 25, "inner_evaluations": 1000})
    seen: set[str] = set()
    for _ in range(4):
        g = s.ask()
        keys = synthetic.space.keys(g)
        assert len(keys) == 25 == len(set(keys))
        assert not seen & set(keys)
        seen.update(keys)
        s.tell(g, measure(synthetic, g))


def test_linas_proposals_beat_random_ones_on_predicted_and_measured_objectives(synthetic):
    s = make_strategy("linas", Problem.simple(synthetic.space, 2), 0, {"population": 40, "inner_evaluations": 4000})
    g = s.ask()
    F0 = measure(synthetic, g)
    s.tell(g, F0)
    proposed = measure(synthetic, s.ask())
    rng_batch = measure(synthetic, synthetic.space.sample(np.random.default_rng(5), 40))
    # Proposals sit closer to the front: for matched latency they are more accurate.
    def dominated_share(a, b):  # share of rows of a dominated by some row of b
        return np.mean([np.any(np.all(b <= x, axis=1) & np.any(b < x, axis=1)) for x in a])
    assert dominated_share(proposed, rng_batch) < dominated_share(rng_batch, proposed)


def test_linas_records_predictor_diagnostics_per_iteration(synthetic):
    s = make_strategy("linas", Problem.simple(synthetic.space, 2), 0, {"population": 20, "inner_evaluations": 500})
    for _ in range(3):
        g = s.ask()
        s.tell(g, measure(synthetic, g))
    fits = [d for d in s.diagnostics if "predictor" in d]
    holdout = [d for d in s.diagnostics if "kendall_tau" in d]
    assert {(d["step"], d["objective"]) for d in fits} == {(1, 0), (1, 1), (2, 0), (2, 1)}
    assert {(d["step"], d["objective"]) for d in holdout} == {(1, 0), (1, 1), (2, 0), (2, 1)}
    assert all(-1 <= d["kendall_tau"] <= 1 and d["mae"] >= 0 and d["n"] == 20 for d in holdout)


def test_nsga2_ranks_failed_networks_last(synthetic):
    s = make_strategy("nsga2", Problem.simple(synthetic.space, 2), 0, {"population": 10})
    g = s.ask()
    F = measure(synthetic, g)
    F[:5] = np.nan
    s.tell(g, F)
    survivors = synthetic.space.keys(np.asarray(s._algorithm.pop.get("X"), dtype=np.int64))
    failed = set(synthetic.space.keys(g[:5]))
    assert len(failed & set(survivors[:5])) == 0


@pytest.mark.parametrize("name, options, message", [
    ("linas", {"population": 1}, "population: Input should be greater than or equal to 2"),
    ("linas", {"inner_evaluations": 10, "inner_population": 50}, "inner_evaluations must be at least"),
    ("linas", {"predictor": "oracle"}, "unknown predictor 'oracle'"),
    ("nsga2", {"pop": 10}, "strategy 'nsga2': option 'pop' is not known"),
    ("annealing", {}, "unknown strategy 'annealing'"),
])
def test_bad_strategy_settings_are_config_errors(mbv3_space, name, options, message):
    with pytest.raises(ConfigError) as info:
        make_strategy(name, Problem.simple(mbv3_space, 2), 0, options)
    assert message in str(info.value)


def test_vectorized_tournament_decides_as_pymoos_binary_tournament():
    """Same winner as pymoo's loop wherever dominance or crowding decides; coin flips only on ties."""
    from pymoo.algorithms.moo.nsga2 import binary_tournament
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

    from linas.strategies._pymoo import FastNSGA2, vectorized_binary_tournament

    rng = np.random.default_rng(3)
    F = rng.integers(0, 6, size=(40, 2)).astype(float)  # coarse values: many ties and equal fronts
    problem = Problem(n_var=1, n_obj=2, xl=0, xu=1)
    pop = RankAndCrowding().do(problem, Population.new(X=np.zeros((40, 1)), F=F), n_survive=40,
                               random_state=np.random.default_rng(0))
    algorithm = FastNSGA2(pop_size=40)
    algorithm.problem = problem
    P = rng.integers(0, 40, size=(500, 2))
    fast = vectorized_binary_tournament(pop, P, algorithm, random_state=np.random.default_rng(1))[:, 0]
    slow = binary_tournament(pop, P, algorithm, random_state=np.random.default_rng(2))[:, 0]
    Fp, crowd = pop.get("F", "crowding")
    a, b = P[:, 0], P[:, 1]
    assert np.all((fast == a) | (fast == b))  # each winner comes from its own pair
    dominates = lambda x, y: (Fp[x] <= Fp[y]).all(1) & (Fp[x] < Fp[y]).any(1)
    decided = dominates(a, b) | dominates(b, a) | (crowd[a] != crowd[b])
    assert decided.sum() > 300 and (~decided).sum() > 10
    assert np.array_equal(fast[decided], slow[decided])
    undecided = ~decided & (a != b)
    assert {"a", "b"} == {"a" if x == y else "b" for x, y in zip(fast[undecided], a[undecided])}  # coin flips
    assert np.all((fast[~decided] == a[~decided]) | (fast[~decided] == b[~decided]))


def test_linas_can_take_its_batch_from_the_inner_final_population_first(synthetic):
    s = make_strategy("linas", Problem.simple(synthetic.space, 2), 0,
                      {"population": 20, "inner_evaluations": 1000, "selection": "population"})
    g = s.ask()
    s.tell(g, measure(synthetic, g))
    batch = s.ask()
    in_final = [x.tobytes() in s._final_keys for x in batch]
    fresh_final = len({k for k in s._final_keys} - {x.tobytes() for x in s.genomes})
    assert sum(in_final) == min(20, fresh_final) > 0
    assert in_final == sorted(in_final, reverse=True)  # the final population's networks lead the batch


def test_linas_can_choose_its_batch_by_expected_hypervolume_improvement(synthetic):
    from linas.mo import best_first, expected_hv_improvement
    from linas.strategies.linas import _derive_seed
    from linas.testing import run_spec
    from predictors import encode_for

    spec = run_spec("linas", 0, 100, synthetic.metrics[:2], [(60, 80), (10, 160)])
    s = make_strategy("linas", spec.problem(synthetic.space), 0,
                      {"population": 20, "inner_evaluations": 1000, "selection": "ehvi", "predictor": "ensemble"})
    g = s.ask()
    s.tell(g, measure(synthetic, g))
    seen = []
    real = s._ehvi_batch
    s._ehvi_batch = lambda *a: seen.append(a) or real(*a)
    batch = s.ask()
    keys = synthetic.space.keys(batch)
    assert len(set(keys)) == 20 and not set(keys) & s.known
    # The first network of the batch has the largest EHVI of all the candidates it was chosen from.
    models, visited, predicted = seen[0]
    pool = visited[best_first(predicted[:, :2], min(len(visited), 200))]
    mean, std = np.empty((len(pool), 2)), np.empty((len(pool), 2))
    for j, model in enumerate(models[:2]):
        mean[:, j], std[:, j] = model.predict(encode_for(model, synthetic.space, pool), return_std=True)
    scale = np.array([1 / 20, 1 / 150])
    Z = np.random.default_rng(_derive_seed(0, 1) + 1).standard_normal((128, 2))
    ehvi = expected_hv_improvement(s.problem.normalize(mean), std * scale, s.problem.normalize(s.F[:20]),
                                   s.problem.reference_point, Z)
    first = synthetic.space.keys(pool).index(keys[0])
    assert ehvi[first] == pytest.approx(ehvi.max()) and ehvi.max() > 0
    with pytest.raises(ConfigError, match="selection ehvi needs a predictor with predictive uncertainty"):
        make_strategy("linas", spec.problem(synthetic.space), 0, {"selection": "ehvi", "predictor": "ridge"})
