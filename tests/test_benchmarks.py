"""Synthetic benchmarks, and LINAS against the baselines on one of them."""

from __future__ import annotations

import numpy as np
import pytest

from linas.config import load_experiment
from linas.errors import ConfigError
from linas.evaluator import make_evaluator
from linas.experiment import Experiment
from linas.report import compare_runs, load_run
from linas.spaces import get_space

from helpers import REPO

BIGGEST = {**{f"ks_{i}": 7 for i in range(20)}, **{f"e_{i}": 6 for i in range(20)}, **{f"d_{s}": 4 for s in range(5)}}
SMALLEST = {**{f"ks_{i}": 3 for i in range(20)}, **{f"e_{i}": 3 for i in range(20)}, **{f"d_{s}": 2 for s in range(5)}}


def test_synthetic_trade_off_runs_from_the_smallest_to_the_biggest_subnet(synthetic):
    big, small = synthetic.evaluate_one(BIGGEST), synthetic.evaluate_one(SMALLEST)
    assert big["top1"] > small["top1"] + 10
    assert big["latency"] > 5 * small["latency"]
    assert big["macs"] == pytest.approx(566.17, abs=0.01)


def test_synthetic_objectives_trade_off_over_random_subnets(synthetic, rng):
    space = synthetic.space
    rows = [synthetic.evaluate_one(space.to_config(g)) for g in space.sample(rng, 300)]
    top1 = np.array([r["top1"] for r in rows])
    latency = np.array([r["latency"] for r in rows])
    assert np.corrcoef(top1, latency)[0, 1] > 0.25  # accuracy costs latency ...
    assert np.corrcoef(top1, latency)[0, 1] < 0.95  # ... but not in lockstep: there is a front to find


def test_synthetic_noise_is_a_fixed_property_of_each_network(mbv3_space, rng):
    noisy = make_evaluator("synthetic_mbv3", mbv3_space, {"noise": 0.5, "noise_seed": 1})
    clean = make_evaluator("synthetic_mbv3", mbv3_space, {})
    config = mbv3_space.to_config(mbv3_space.sample(rng, 1)[0])
    assert noisy.evaluate_one(config) == noisy.evaluate_one(config)
    assert noisy.evaluate_one(config)["top1"] != clean.evaluate_one(config)["top1"]
    assert noisy.identity != clean.identity


def test_synthetic_needs_the_mobilenet_space():
    with pytest.raises(ConfigError, match="needs the ofa_mbv3 space"):
        make_evaluator("synthetic_mbv3", get_space("hat_cpu"), {})


@pytest.mark.parametrize("problem, n_obj", [("zdt1", 2), ("zdt2", 2), ("dtlz2", 3)])
def test_pymoo_problems_evaluate_on_the_grid(problem, n_obj):
    space = get_space("grid", n_var=6, levels=5)
    options = {"problem": problem, **({"n_obj": n_obj} if problem.startswith("dtlz") else {})}
    evaluator = make_evaluator("pymoo_problem", space, options)
    assert [m.name for m in evaluator.metrics] == [f"f{j + 1}" for j in range(n_obj)]
    zeros = evaluator.evaluate_one({f"x{i}": 0 for i in range(6)})
    if problem == "zdt1":
        assert zeros == {"f1": 0.0, "f2": 1.0}  # x = 0: f1 = 0, g = 1, f2 = 1 - sqrt(0)
    assert len(zeros) == n_obj


def test_unknown_pymoo_problem_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot build 'zdt99'"):
        make_evaluator("pymoo_problem", get_space("grid"), {"problem": "zdt99"})


@pytest.mark.slow
def test_linas_beats_random_and_matches_nsga2_at_200_validations(tmp_path):
    """The main job's settings (population 50, 20,000 predicted evaluations), 3 fixed seeds."""
    config = load_experiment(REPO / "experiments" / "configs" / "synthetic_mbv3.yaml",
                             {"budget": 200, "seeds": [0, 1, 2], "output": str(tmp_path / "runs"),
                              "cache": str(tmp_path / "cache.sqlite")})
    Experiment.build(config).run(progress=False, log=lambda *_: None)
    runs = [load_run(config.run_dir(s, seed)) for s in config.strategies for seed in config.seeds]
    final = compare_runs(runs).final.set_index("strategy")["final_hv_mean"]
    assert final["linas"] > final["random"]
    assert final["linas"] >= final["nsga2"]


def test_zdt_search_runs_end_to_end(tmp_path):
    config = load_experiment(REPO / "experiments" / "configs" / "zdt1.yaml",
                             {"budget": 60, "seeds": [0], "output": str(tmp_path / "runs")})
    results = Experiment.build(config).run(progress=False, log=lambda *_: None)
    assert all(r.n_validated == 60 for r in results)
    assert all(0 < r.hypervolume <= 1 for r in results)
