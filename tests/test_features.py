"""Feature sources (``features:``), LINAS ``predictor_features`` and the ``prescreen`` strategy."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from linas.archive import EvaluationCache, RunArchive
from linas.config import load_experiment
from linas.errors import ConfigError
from linas.evaluator import Evaluator
from linas.experiment import Experiment
from linas.features import FeatureSource
from linas.objectives import Constraint, Objective
from linas.runner import run_search
from linas.strategies import make_strategy
from linas.strategies.prescreen import Prescreen
from linas.testing import run_spec

from helpers import synthetic_config

PLUGIN = '''
import hashlib, os
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective

@evaluators.register("logged_features")
class LoggedFeatures(Evaluator):
    """Two cheap features; every computation appends the network's key to $FEATURE_LOG."""
    metrics = (Objective("signal", "max"), Objective("size", "min"))

    @property
    def identity(self):
        return "logged_features:v1"

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        with open(os.environ["FEATURE_LOG"], "a") as f:
            f.write(key + "\\n")
        x = self.space.encode(self.space.from_config(config)[None], "ordinal")[0]
        return {"signal": int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 2**24, "size": float(x.sum())}
'''

FEATURES = {"name": "logged_features", "metrics": ["signal", "size"]}
LINAS_PF = {"name": "linas", "label": "linas_pf",
            "options": {"population": 10, "inner_evaluations": 400, "inner_population": 20,
                        "predictor": "ridge", "predictor_features": ["signal"], "feature_pool": 25}}
PRESCREEN = {"name": "prescreen", "options": {"population": 10, "candidates": 30}}


def score_of(key: str) -> float:
    """A value of each network that its encoding cannot predict (a hash of its key), 0-100."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10_000 / 100


class Oracle(Evaluator):
    """``score`` (a hash of the key: unlearnable from the encoding) and the synthetic latency."""

    metrics = (Objective("score", "max"), Objective("latency", "min", "ms"))

    def __init__(self, synthetic):
        super().__init__(synthetic.space)
        self.synthetic = synthetic

    @property
    def identity(self):
        return "oracle"

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        return {"score": score_of(key), "latency": self.synthetic.evaluate_one(config)["latency"]}


class Table(Evaluator):
    """Features looked up in a table by network key; counts its computations; fails where the value is None."""

    metrics = (Objective("a", "min"), Objective("b", "max"))

    def __init__(self, space, table):
        super().__init__(space)
        self.table, self.calls = table, Counter()

    @property
    def identity(self):
        return "table"

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        self.calls[key] += 1
        if self.table[key] is None:
            raise RuntimeError("no features")
        a, b = self.table[key]
        return {"a": a, "b": b}


# ---------------------------------------------------------------------- the feature source
def test_features_are_computed_once_and_kept_in_the_cache(tmp_path, mbv3_space):
    genomes = mbv3_space.sample_unique(np.random.default_rng(0), 5)
    keys = mbv3_space.keys(genomes)
    table = {k: (float(i), 10.0 - i) for i, k in enumerate(keys)}
    table[keys[3]] = None
    evaluator = Table(mbv3_space, table)
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    source = FeatureSource(evaluator, ["b", "a"], cache=cache)
    values = source.values(genomes)
    assert values[:, 0].tolist()[:3] == [10.0, 9.0, 8.0] and values[:, 1].tolist()[:3] == [0.0, 1.0, 2.0]
    assert np.isnan(values[3]).all()  # a failed computation is a NaN row
    assert source.minimization(genomes[:2]).tolist() == [[-10.0, 0.0], [-9.0, 1.0]]  # b is maximized
    source.values(genomes[::-1])
    assert set(evaluator.calls.values()) == {1} and source.computed == 5
    assert cache.get("table", keys[0]) == ({"a": 0.0, "b": 10.0}, pytest.approx(cache.get("table", keys[0])[1]))
    assert cache.get("table", keys[3]) is None  # failures are not cached

    other = Table(mbv3_space, table)  # another process: reads the cache, computes only the failed one again
    again = FeatureSource(other, ["b", "a"], cache=cache)
    np.testing.assert_array_equal(again.values(genomes), values)
    assert dict(other.calls) == {keys[3]: 1} and again.reused == 4
    with pytest.raises(ConfigError, match=r"feature 'c' is not among the features \(b, a\)"):
        again.values(genomes, ["c"])
    with pytest.raises(ConfigError, match="features 'table': unknown metric 'c'; it measures: a, b"):
        FeatureSource(other, ["a", "c"], name="table")


def test_features_are_computed_once_across_seeds_strategies_and_a_resume(tmp_path, monkeypatch):
    """Two seeds of prescreen and of LINAS with predictor_features share one cache; a resumed
    run computes nothing it computed before, and ends as an uninterrupted one."""
    (tmp_path / "feature_plugin.py").write_text(PLUGIN)
    log = tmp_path / "features.log"
    monkeypatch.setenv("FEATURE_LOG", str(log))
    common = dict(features=FEATURES, plugins=["feature_plugin"], seeds=[0, 1], strategies=[PRESCREEN, LINAS_PF],
                  cache=str(tmp_path / "cache.sqlite"))
    synthetic_config(tmp_path, budget=30, **common)
    experiment = Experiment.build(load_experiment(tmp_path / "exp.yaml"))
    experiment.run(progress=False, log=lambda *a: None)
    first = log.read_text().split()
    assert first and len(first) == len(set(first))
    # Resumed with a larger budget: only networks never seen before get features.
    synthetic_config(tmp_path, budget=50, **common)
    Experiment.build(load_experiment(tmp_path / "exp.yaml")).run(progress=False, log=lambda *a: None)
    computed = log.read_text().split()
    assert len(computed) == len(set(computed)) > len(first)
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    assert len(computed) == sum(cache.get("logged_features:v1", k) is not None for k in computed)
    # Features never reach the archives: validations are the objectives' alone.
    for label in ("prescreen", "linas_pf"):
        for seed in (0, 1):
            records = RunArchive.open_existing(tmp_path / "runs" / label / f"seed{seed}").records()
            assert len(records) == 50 and all(set(r.metrics) == {"top1", "latency", "macs", "params"}
                                              for r in records)
            assert RunArchive.open_existing(tmp_path / "runs" / label / f"seed{seed}").meta()["spec"]["extra"][
                "features"]["identity"] == "logged_features:v1"
    # The same experiment in one go (another output, the same cache): the same runs, no new features.
    synthetic_config(tmp_path, budget=50, output=str(tmp_path / "straight"), **common)
    Experiment.build(load_experiment(tmp_path / "exp.yaml")).run(progress=False, log=lambda *a: None)
    assert log.read_text().split() == computed
    for label in ("prescreen", "linas_pf"):
        for seed in (0, 1):
            keys = [[r.key for r in RunArchive.open_existing(tmp_path / d / label / f"seed{seed}").records()]
                    for d in ("runs", "straight")]
            assert keys[0] == keys[1]


# ---------------------------------------------------------------------- LINAS
def _linas_batches(synthetic, problem, options, steps=3):
    """The proposals of ``steps`` asks, each batch told with its synthetic measurements."""
    strategy = make_strategy("linas", problem, 0, {"population": 10, "inner_evaluations": 400,
                                                    "inner_population": 20, **options})
    batches = []
    for _ in range(steps):
        g = strategy.ask()
        batches.append(synthetic.space.keys(g))
        rows = [synthetic.evaluate_one(synthetic.space.to_config(x)) for x in g]
        strategy.tell(g, np.array([[-r["top1"], r["latency"]] for r in rows]))
    return batches


def test_linas_without_predictor_features_ignores_a_feature_source(synthetic):
    spec = run_spec("linas", 0, 30, synthetic.metrics[:2], [(60, 80), (10, 160)], space=synthetic.space)
    table = Table(synthetic.space, {})
    with_source = spec.problem(synthetic.space, FeatureSource(table, ["a"]))
    assert _linas_batches(synthetic, spec.problem(synthetic.space), {}) == \
        _linas_batches(synthetic, with_source, {})
    assert not table.calls


def test_linas_reranks_its_pool_with_the_features(synthetic):
    """The first objective is a hash of each network (no encoding predicts it) that the feature
    source also returns: re-ranked with the feature, the batches' predictions rank the measured
    values; without it they do not, and only the pool and the validated networks get features."""
    oracle = Oracle(synthetic)

    class Score(Evaluator):
        metrics = (Objective("score", "max"),)
        calls = 0

        @property
        def identity(self):
            return "score"

        def evaluate_one(self, config):
            Score.calls += 1
            return {"score": score_of(self.space.key(self.space.from_config(config)))}

    def diagnostics(options, features=None):
        spec = run_spec("linas", 0, 60, oracle.metrics, [(0, 100), (10, 160)], space=synthetic.space)
        strategy = make_strategy("linas", spec.problem(synthetic.space, features), 0,
                                 {"population": 10, "inner_evaluations": 400, "inner_population": 20,
                                  "predictor": "ridge", **options})
        taus = []
        for step in range(5):
            g = strategy.ask()
            if step == 1 and features is not None:  # the initial population and the pool of step 1
                assert Score.calls == 10 + 40
            rows = [oracle.evaluate_one(oracle.space.to_config(x)) for x in g]
            strategy.tell(g, np.array([[-r["score"], r["latency"]] for r in rows]))
            taus += [d["kendall_tau"] for d in strategy.diagnostics if d.get("objective") == 0 and "kendall_tau" in d]
            strategy.diagnostics.clear()
        return np.mean(taus)

    plain = diagnostics({})
    source = FeatureSource(Score(synthetic.space), ["score"])
    reranked = diagnostics({"predictor_features": ["score"], "feature_pool": 40}, source)
    assert reranked > 0.6 and plain < 0.3, (reranked, plain)
    Score.calls = 0  # the same with the batch taken from the inner search's final population first
    population = diagnostics({"predictor_features": ["score"], "feature_pool": 40, "selection": "population"},
                             FeatureSource(Score(synthetic.space), ["score"]))
    assert population > 0.6, population


@pytest.mark.parametrize("options, message", [
    ({"predictor_features": ["snip"]}, "strategy 'linas': predictor_features needs a features: section"),
    ({"predictor_features": []}, "predictor_features: name at least one feature"),
    ({"predictor_features": ["a"], "selection": "ehvi", "predictor": "ensemble"}, "not ehvi"),
    ({"feature_pool": 100}, "feature_pool needs predictor_features"),
    ({"predictor_features": ["a"], "feature_pool": 5}, "feature_pool must be at least population"),
])
def test_linas_feature_options_are_checked(synthetic, options, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy("linas", spec_problem(synthetic), 0, {"population": 10, **options})


def spec_problem(synthetic, features=None, constraints=()):
    spec = run_spec("x", 0, 10, synthetic.metrics[:2], [(60, 80), (10, 160)], constraints=constraints,
                    space=synthetic.space)
    return spec.problem(synthetic.space, features)


# ---------------------------------------------------------------------- prescreen
def test_prescreen_validates_the_non_dominated_candidates(mbv3_space):
    """Features (a: min, b: max) of six hand-made candidates: 0, 2 and 5 are non-dominated."""
    pool = mbv3_space.sample_unique(np.random.default_rng(3), 6)
    keys = mbv3_space.keys(pool)
    values = [(1.0, 5.0), (2.0, 4.0), (2.0, 8.0), (3.0, 7.0), (7.0, 8.5), (6.0, 9.0)]
    table = dict(zip(keys, values))
    problem = Problem2(mbv3_space, FeatureSource(Table(mbv3_space, table), ["a", "b"]))
    strategy = Prescreen(problem, 0, population=3, candidates=6)
    assert sorted(strategy.choose(pool).tolist()) == [0, 2, 5]
    # Two more come from the next front {1, 3, 4}, by crowding: its extremes (1: a=2, 4: a=7), not 3.
    assert sorted(Prescreen(problem, 0, population=5, candidates=6).choose(pool).tolist()) == [0, 1, 2, 4, 5]
    # Sorted by b alone: the three largest.
    assert sorted(Prescreen(problem, 0, population=3, candidates=6, features=["b"]).choose(pool).tolist()) == \
        [2, 4, 5]
    # A constraint on a feature metric: a <= 2.5 leaves 5 infeasible; 1 (feasible) takes its place.
    constrained = Problem2(mbv3_space, problem.features, constraints=(Constraint("a", max=2.5),))
    assert sorted(Prescreen(constrained, 0, population=3, candidates=6).choose(pool).tolist()) == [0, 1, 2]
    # A network whose features failed ranks last.
    table[keys[0]] = None
    failing = Problem2(mbv3_space, FeatureSource(Table(mbv3_space, table), ["a", "b"]))
    assert 0 not in Prescreen(failing, 0, population=5, candidates=6).choose(pool).tolist()


def Problem2(space, features, constraints=()):
    from linas.spec import Problem

    return Problem(space, (Objective("top1", "max", bounds=(60, 80)), Objective("latency", "min", bounds=(10, 160))),
                   constraints=constraints, features=features)


def test_prescreen_asks_for_features_of_its_candidates_only(tmp_path, synthetic):
    table = Counter()

    class Macs(Evaluator):
        metrics = synthetic.metrics

        @property
        def identity(self):
            return "macs"

        def evaluate_one(self, config):
            table[self.space.key(self.space.from_config(config))] += 1
            return synthetic.evaluate_one(config)

    spec = run_spec("prescreen", 0, 40, synthetic.metrics[:2], [(60, 80), (10, 160)],
                    {"population": 10, "candidates": 50}, space=synthetic.space)
    source = FeatureSource(Macs(synthetic.space), ["top1", "latency"])
    strategy = make_strategy("prescreen", spec.problem(synthetic.space, source), 0,
                             {"population": 10, "candidates": 50})
    result = run_search(tmp_path / "run", spec, synthetic.space, synthetic, strategy, progress=False)
    assert result.n_validated == 40
    assert sum(table.values()) == len(table) == 3 * 50  # three prescreened steps after the initial population
    records = RunArchive.open_existing(tmp_path / "run").records()
    assert all(r.key in table for r in records[10:]) and not any(r.key in table for r in records[:10])


def test_prescreen_options_are_checked(synthetic):
    with pytest.raises(ConfigError, match="strategy 'prescreen' needs a features: section"):
        make_strategy("prescreen", spec_problem(synthetic), 0, {"population": 10})
    source = FeatureSource(Table(synthetic.space, {}), ["a", "b"])
    with pytest.raises(ConfigError, match=r"strategy 'prescreen': features: 'c' is not among the features \(a, b\)"):
        make_strategy("prescreen", spec_problem(synthetic, source), 0, {"population": 10, "features": ["c"]})
    with pytest.raises(ConfigError, match="candidates must be at least population"):
        make_strategy("prescreen", spec_problem(synthetic, source), 0, {"population": 10, "candidates": 5})


# ---------------------------------------------------------------------- config errors
def linas_search(config):
    return subprocess.run([sys.executable, "-m", "linas.cli", "search", str(config), "--no-progress"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("change, message", [
    ({"strategies": [{"name": "linas", "options": {"predictor_features": ["snip", "jacob_cov"]}}]},
     "strategy 'linas': predictor_features needs a features: section in the experiment config"),
    ({"strategies": [{"name": "prescreen"}]}, "strategy 'prescreen' needs a features: section"),
    ({"features": {"name": "synthetic_mbv3", "metrics": ["snip"]},
      "strategies": [{"name": "linas", "options": {"predictor_features": ["snip"]}}]},
     "features 'synthetic_mbv3': unknown metric 'snip'; it measures: top1, latency, macs, params"),
    ({"features": {"name": "synthetic_mbv3", "metrics": ["macs"]},
      "strategies": [{"name": "linas", "options": {"predictor_features": ["params"]}}]},
     "strategy 'linas': predictor_features: 'params' is not among the features (macs)"),
    ({"features": {"name": "synthetic_mbv3", "metrics": []}}, "features.metrics"),
    ({"features": {"name": "synthetic_mbv3", "metrics": ["macs"], "colour": 1}}, "features.colour: unknown key"),
    ({"features": {"name": "synthetic_mbv3", "options": {"noise": -1}, "metrics": ["macs"]}},
     "evaluator 'synthetic_mbv3': noise: Input should be greater than or equal to 0"),
])
def test_bad_feature_configs_stop_with_one_line(tmp_path, change, message):
    synthetic_config(tmp_path, **change)
    result = linas_search(tmp_path / "exp.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linas: error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_resumes_when_its_strategy_gained_options_left_unset(tmp_path, synthetic):
    """Runs of LINAS started before predictor_features and feature_pool existed resume with them unset."""
    from dataclasses import replace

    def spec(resolved, budget):
        s = run_spec("random", 0, budget, synthetic.metrics[:2], [(60, 80), (10, 160)], {"population": 10})
        return replace(s, strategy={**s.strategy, "resolved": resolved})

    def run(resolved, budget):
        strategy = make_strategy("random", spec({}, budget).problem(synthetic.space), 0, {"population": 10})
        return run_search(tmp_path / "run", spec(resolved, budget), synthetic.space, synthetic, strategy,
                          progress=False)

    run({"population": 10}, 10)
    assert run({"population": 10, "predictor_features": None, "feature_pool": None}, 20).n_validated == 20
    with pytest.raises(ConfigError, match=r"changed since the run started \(feature_pool: None -> 100\)"):
        run({"population": 10, "feature_pool": 100}, 30)


def test_a_run_that_uses_features_resumes_only_with_the_same_feature_source(tmp_path, synthetic):
    from dataclasses import replace

    source = FeatureSource(Table(synthetic.space, {}), ["a", "b"])

    def run(features, budget):
        spec = run_spec("random", 0, budget, synthetic.metrics[:2], [(60, 80), (10, 160)], {"population": 10})
        spec = replace(spec, extra={"features": features})
        strategy = make_strategy("random", spec.problem(synthetic.space, source), 0, {"population": 10})
        return run_search(tmp_path / "run", spec, synthetic.space, synthetic, strategy, progress=False)

    table = {"name": "table", "options": {}, "metrics": ["a", "b"], "identity": "table"}
    run(table, 10)
    assert run({**table, "identity": "table on another device"}, 20).resumed  # the identity is recorded, not a key
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        run({**table, "options": {"batch": 16}}, 30)
