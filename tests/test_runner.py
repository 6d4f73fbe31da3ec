"""The search loop: exact budgets, no double validation, failures, cache, resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from linas.archive import EvaluationCache, RunArchive
from linas.errors import ConfigError
from linas.evaluator import Evaluator
from linas.objectives import Objective
from linas.runner import run_search
from linas.strategies import make_strategy
from linas.testing import run_spec

BOUNDS = [(60, 80), (10, 160)]


class CountingEvaluator(Evaluator):
    """Wraps an evaluator, counting calls per config key; optionally breaks some networks."""

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"))

    def __init__(self, inner, fail_every: int = 0, how: str = "raise"):
        super().__init__(inner.space)
        self.inner, self.fail_every, self.how = inner, fail_every, how
        self.calls: Counter = Counter()

    @property
    def identity(self):
        return "counting:" + self.inner.identity + f":{self.fail_every}:{self.how}"

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        self.calls[key] += 1
        if self.fail_every and int(key.replace(",", "")[-12:]) % self.fail_every == 0:
            if self.how == "raise":
                raise RuntimeError("out of memory")
            if self.how == "nan":
                return {"top1": float("nan"), "latency": 1.0}
            if self.how == "sleep":
                import time
                time.sleep(2)
        out = self.inner.evaluate_one(config)
        return {"top1": out["top1"], "latency": out["latency"]}


def run(tmp_path, evaluator, name="nsga2", budget=120, seed=0, options=None, cache=None, timeout=None,
        sub="run"):
    space = evaluator.space
    spec = run_spec(name, seed, budget, CountingEvaluator.metrics, BOUNDS, options or {"population": 20})
    strategy = make_strategy(name, spec.problem(space), seed, options or {"population": 20})
    return run_search(tmp_path / sub, spec, space, evaluator, strategy, cache=cache, timeout=timeout,
                      progress=False)


@pytest.mark.parametrize("name, options", [
    ("random", {"population": 20}),
    ("nsga2", {"population": 20}),
    ("linas", {"population": 20, "inner_evaluations": 600}),
])
@pytest.mark.parametrize("budget", [45, 60])
def test_budget_is_exact(tmp_path, synthetic, name, options, budget):
    result = run(tmp_path, CountingEvaluator(synthetic), name, budget, options=options)
    archive = RunArchive.open_existing(result.run_dir)
    assert result.n_validated == budget == archive.n_validated == len(archive)


class ToyEvaluator(Evaluator):
    """Closed-form objectives over the toy space, counting calls per network."""

    metrics = CountingEvaluator.metrics

    def __init__(self, space):
        super().__init__(space)
        self.calls: Counter = Counter()

    identity = "toy"

    def evaluate_one(self, config):
        self.calls[self.space.key(self.space.from_config(config))] += 1
        k = sum(v for n, v in config.items() if n.startswith("k"))
        return {"top1": 60 + k / 2 + config["d0"], "latency": 10 + k + 3 * config["d1"]}


def test_no_network_is_validated_twice_even_when_nsga2_rediscovers_it(tmp_path, toy_space):
    # The toy space holds few networks, so offspring repeat earlier generations often. (With
    # SBX on indices of two or three choices, pymoo's duplicate elimination leaves NSGA-II
    # nothing new after about 90 networks here; random-reset mutation keeps finding some.)
    evaluator = ToyEvaluator(toy_space)
    options = {"population": 10, "operators": "choice"}
    spec = run_spec("nsga2", 0, 150, CountingEvaluator.metrics, BOUNDS, options)
    strategy = make_strategy("nsga2", spec.problem(toy_space), 0, options)
    result = run_search(tmp_path / "toy", spec, toy_space, evaluator, strategy, progress=False)
    assert max(evaluator.calls.values()) == 1
    assert result.n_validated == 150


@pytest.mark.parametrize("how, error", [("raise", "RuntimeError: out of memory"),
                                        ("nan", "metric 'top1' is nan (float)")])
def test_failed_evaluations_are_recorded_and_do_not_count(tmp_path, synthetic, how, error):
    evaluator = CountingEvaluator(synthetic, fail_every=3, how=how)
    result = run(tmp_path, evaluator, "nsga2", 60)
    records = RunArchive.open_existing(result.run_dir).records()
    failed = [r for r in records if not r.ok]
    assert failed and all(r.error == error and r.metrics == {} for r in failed)
    assert sum(r.ok for r in records) == 60 == result.n_validated
    assert result.n_failed == len(failed)
    assert max(evaluator.calls.values()) == 1


def test_an_evaluation_past_its_timeout_fails_and_the_search_goes_on(tmp_path, synthetic):
    evaluator = CountingEvaluator(synthetic, fail_every=7, how="sleep")
    result = run(tmp_path, evaluator, "random", 25, timeout=0.5)
    failed = [r for r in RunArchive.open_existing(result.run_dir).records() if not r.ok]
    assert failed and all(r.error == "timed out after 0.5 s" for r in failed)
    assert result.n_validated == 25


def test_hypervolume_is_stored_after_every_validation(tmp_path, synthetic):
    result = run(tmp_path, CountingEvaluator(synthetic), "random", 40)
    records = RunArchive.open_existing(result.run_dir).records()
    hv = [r.hypervolume for r in records]
    assert all(h is not None for h in hv) and hv == sorted(hv)
    assert [r.n_validated for r in records] == list(range(1, 41))
    assert hv[-1] == pytest.approx(result.hypervolume)


def test_the_cache_shares_measurements_across_strategies(tmp_path, synthetic):
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    first = CountingEvaluator(synthetic)
    run(tmp_path, first, "random", 30, cache=cache, sub="random")
    second = CountingEvaluator(synthetic)
    run(tmp_path, second, "nsga2", 30, cache=cache, sub="nsga2")
    # Both start from the same 20 networks: the second run measures none of them again ...
    assert sum(second.calls.values()) == 10
    records = RunArchive.open_existing(tmp_path / "nsga2").records()
    assert sum(r.cached for r in records) == 20
    # ... and cached measurements still count as that run's validations.
    assert RunArchive.open_existing(tmp_path / "nsga2").n_validated == 30


def test_rerunning_a_finished_run_validates_nothing(tmp_path, synthetic):
    run(tmp_path, CountingEvaluator(synthetic), "nsga2", 50)
    again = CountingEvaluator(synthetic)
    result = run(tmp_path, again, "nsga2", 50)
    assert result.resumed and sum(again.calls.values()) == 0 and result.n_validated == 50


def test_a_larger_budget_extends_a_run_exactly_like_a_longer_run(tmp_path, synthetic):
    options = {"population": 20, "inner_evaluations": 600}
    run(tmp_path, CountingEvaluator(synthetic), "linas", 50, options=options, sub="extended")
    run(tmp_path, CountingEvaluator(synthetic), "linas", 90, options=options, sub="extended")
    run(tmp_path, CountingEvaluator(synthetic), "linas", 90, options=options, sub="straight")
    keys = lambda d: [r.key for r in RunArchive.open_existing(tmp_path / d).records()]  # noqa: E731
    assert keys("extended") == keys("straight")


def _steps(run_dir):
    return [r.step for r in RunArchive.open_existing(run_dir).records()]


def test_a_resumed_linas_is_restored_from_its_archive_not_replayed(tmp_path, synthetic, monkeypatch):
    """Resume hands LINAS what it was told and its saved state: no past predictor fit or inner
    search is rerun, and it goes on at the next step."""
    import linas.strategies.linas as linas_module

    options = {"population": 20, "inner_evaluations": 600}
    run(tmp_path, CountingEvaluator(synthetic), "linas", 80, options=options)  # steps 0-3
    searched = []
    real = linas_module.Linas._inner_search
    monkeypatch.setattr(linas_module.Linas, "_inner_search",
                        lambda self, *a: searched.append(self.step) or real(self, *a))
    again = CountingEvaluator(synthetic)
    result = run(tmp_path, again, "linas", 120, options=options)
    assert searched == [4, 5]
    assert result.n_validated == 120 and sum(again.calls.values()) == 40
    assert _steps(tmp_path / "run")[80:] == [4] * 20 + [5] * 20
    fits = {d["step"]: d["n_train"] for d in RunArchive.open_existing(tmp_path / "run").diagnostics()}
    assert fits[4] == 80 and fits[5] == 100


def test_a_resumed_linas_whose_interrupted_batch_diverges_is_told_what_it_skipped(tmp_path, synthetic,
                                                                                  monkeypatch):
    """Another machine's floating point can change the batch LINAS asks again for an interrupted
    step; it must then be told the archived part of that batch, not forget it."""
    import linas.strategies.linas as linas_module

    options = {"population": 20, "inner_evaluations": 600}
    run(tmp_path, CountingEvaluator(synthetic), "linas", 70, options=options)  # step 3 cut after 10
    assert _steps(tmp_path / "run") == [0] * 20 + [1] * 20 + [2] * 20 + [3] * 10
    real = linas_module._derive_seed
    monkeypatch.setattr(linas_module, "_derive_seed", lambda seed, step: real(seed + 1000, step))
    again = CountingEvaluator(synthetic)
    result = run(tmp_path, again, "linas", 110, options=options)
    archive = RunArchive.open_existing(tmp_path / "run")
    assert result.n_validated == 110 and sum(again.calls.values()) == 40  # nothing validated twice
    assert _steps(tmp_path / "run")[70:] == [4] * 20 + [5] * 20
    assert archive.meta()["replay_diverged"] == {"at_step": 3, "untold_networks": 10, "absorbed": True,
                                                 "mode": "restored"}
    fits = {d["step"]: d["n_train"] for d in archive.diagnostics()}
    assert fits[4] == 70 and fits[5] == 90  # the predictors learned from every archived network


def test_a_plain_resume_records_its_session_and_no_divergence(tmp_path, synthetic):
    options = {"population": 20, "inner_evaluations": 600}
    run(tmp_path, CountingEvaluator(synthetic), "linas", 50, options=options)
    run(tmp_path, CountingEvaluator(synthetic), "linas", 90, options=options)
    meta = RunArchive.open_existing(tmp_path / "run").meta()
    assert "replay_diverged" not in meta
    steps = _steps(tmp_path / "run")
    assert steps == sorted(steps)
    # Each session is recorded with its machine and versions (a resume may run elsewhere).
    assert [s["validated_before"] for s in meta["sessions"]] == [0, 50]
    assert all(s["machine"]["cpus"] and s["versions"]["numpy"] for s in meta["sessions"])


def test_a_strategy_that_cannot_catch_up_says_so_and_goes_on(tmp_path, synthetic, monkeypatch, capsys):
    from linas.strategies.nsga2 import NSGA2Search

    run(tmp_path, CountingEvaluator(synthetic), "nsga2", 60)
    original_ask = NSGA2Search.ask

    def shifted_ask(self):  # a replay that proposes other networks from step 1 on
        genomes = original_ask(self)
        return genomes if self.step == 0 else self.space.sample_unique(np.random.default_rng(self.step + 99), 20)

    monkeypatch.setattr(NSGA2Search, "ask", shifted_ask)
    result = run(tmp_path, CountingEvaluator(synthetic), "nsga2", 100)
    assert result.n_validated == 100
    assert RunArchive.open_existing(tmp_path / "run").meta()["replay_diverged"] == {"at_step": 1, "untold_networks": 40,
                                                                     "absorbed": False, "mode": "replay"}
    assert "proposes other networks than its archive holds" in capsys.readouterr().err


def test_an_archive_refuses_a_run_with_other_settings(tmp_path, synthetic):
    run(tmp_path, CountingEvaluator(synthetic), "random", 20)
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        run(tmp_path, CountingEvaluator(synthetic), "random", 20, seed=1)


def test_csv_export_has_one_row_per_evaluation(tmp_path, synthetic):
    result = run(tmp_path, CountingEvaluator(synthetic, fail_every=5), "random", 30)
    path = RunArchive.open_existing(result.run_dir).export_csv(tmp_path / "out.csv")
    import pandas as pd

    df = pd.read_csv(path)
    assert len(df) == len(RunArchive.open_existing(result.run_dir))
    assert set(df["status"]) <= {"ok", "failed"}
    assert {"top1", "latency", "hypervolume", "config_key", "ks_0", "d_4"} <= set(df.columns)
    assert np.all(df.loc[df.status == "ok", "n_validated"].to_numpy() == np.arange(1, 31))


def test_a_smaller_budget_never_lowers_the_stored_one(tmp_path, synthetic, capsys):
    run(tmp_path, CountingEvaluator(synthetic), "random", 60)
    again = CountingEvaluator(synthetic)
    result = run(tmp_path, again, "random", 30)
    meta = RunArchive.open_existing(tmp_path / "run").meta()
    assert result.n_validated == 60 and sum(again.calls.values()) == 0
    assert meta["budget"] == 60 and meta["spec"]["budget"] == 60
    assert "budget 30 is below the run's budget 60" in capsys.readouterr().err


def test_the_archive_holds_the_run_spec(tmp_path, synthetic):
    from linas.spec import RunSpec

    run(tmp_path, CountingEvaluator(synthetic), "random", 20, seed=4)
    spec = RunSpec.from_meta(RunArchive.open_existing(tmp_path / "run").meta())
    assert spec.seed == 4 and spec.budget == 20 and spec.strategy["name"] == "random"
    assert [(o.name, o.direction, o.bounds) for o in spec.objectives] == [("top1", "max", (60.0, 80.0)),
                                                                          ("latency", "min", (10.0, 160.0))]


def test_a_measurement_is_archived_before_it_is_cached(tmp_path, synthetic, monkeypatch):
    """A kill between the two writes must never leave a fresh measurement marked as a cache hit."""
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    order = []
    real_put, real_add = EvaluationCache.put, RunArchive.add
    monkeypatch.setattr(EvaluationCache, "put", lambda self, *a: order.append("cache") or real_put(self, *a))
    monkeypatch.setattr(RunArchive, "add", lambda self, *a: order.append("archive") or real_add(self, *a))
    run(tmp_path, CountingEvaluator(synthetic), "random", 5, options={"population": 5}, cache=cache)
    assert order == ["archive", "cache"] * 5
    assert not any(r.cached for r in RunArchive.open_existing(tmp_path / "run").records())


def test_a_run_whose_strategy_defaults_changed_is_refused_not_mixed(tmp_path, synthetic):
    from dataclasses import replace

    from linas.testing import run_spec

    def spec(resolved):
        s = run_spec("random", 0, 20, CountingEvaluator.metrics, BOUNDS, {"population": 20})
        return replace(s, strategy={**s.strategy, "resolved": resolved})

    evaluator = CountingEvaluator(synthetic)
    strategy = make_strategy("random", spec({}).problem(synthetic.space), 0, {"population": 20})
    run_search(tmp_path / "run", spec({"population": 20, "x": 1}), synthetic.space, evaluator, strategy,
               progress=False)
    with pytest.raises(ConfigError, match=r"options of strategy 'random' changed since the run started \(x: 1 -> 2\)"):
        run_search(tmp_path / "run", spec({"population": 20, "x": 2}), synthetic.space, evaluator, strategy,
                   progress=False)


def test_a_changed_default_given_with_its_old_value_resumes_the_run(tmp_path, synthetic):
    """The refusal above says to name the old value; doing so (options spelled differently,
    resolved the same) resumes the run, and another value is still refused."""
    from dataclasses import replace

    from linas.testing import run_spec

    def spec(given, resolved):
        s = run_spec("random", 0, 20, CountingEvaluator.metrics, BOUNDS, given)
        return replace(s, strategy={**s.strategy, "resolved": resolved})

    evaluator = CountingEvaluator(synthetic)
    strategy = make_strategy("random", spec({}, {}).problem(synthetic.space), 0, {"population": 20})
    run_search(tmp_path / "run", spec({"population": 20}, {"population": 20, "x": 1}), synthetic.space,
               evaluator, strategy, progress=False)
    with pytest.raises(ConfigError, match=r"changed since the run started \(x: 1 -> 2\); give the old values"):
        run_search(tmp_path / "run", spec({"population": 20}, {"population": 20, "x": 2}), synthetic.space,
                   evaluator, strategy, progress=False)
    result = run_search(tmp_path / "run", spec({"population": 20, "x": 1}, {"population": 20, "x": 1}),
                        synthetic.space, evaluator, strategy, progress=False)
    assert result.resumed and result.n_validated == 20
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        run_search(tmp_path / "run", spec({"population": 20, "x": 3}, {"population": 20, "x": 3}),
                   synthetic.space, evaluator, strategy, progress=False)


def test_a_run_written_before_specs_resumes_only_with_the_defaults_it_ran_with(tmp_path, synthetic):
    """NSGA-II's default operators changed; an archive from before must name its old ones."""
    import json
    import sqlite3

    old = {"population": 20, "operators": "choice"}
    run(tmp_path, CountingEvaluator(synthetic), "nsga2", 40, options=old)
    with sqlite3.connect(tmp_path / "run" / "archive.sqlite") as conn:  # as an older linas wrote it
        settings = json.loads(conn.execute("SELECT value FROM meta WHERE name = 'settings'").fetchone()[0])
        settings["strategy"]["options"] = {"population": 20}
        conn.execute("UPDATE meta SET value = ? WHERE name = 'settings'", (json.dumps(settings),))
        conn.execute("DELETE FROM meta WHERE name = 'spec'")
    with pytest.raises(ConfigError, match="its default operators was 'choice'; add operators: choice"):
        run(tmp_path, CountingEvaluator(synthetic), "nsga2", 60, options={"population": 20})
    again = CountingEvaluator(synthetic)
    result = run(tmp_path, again, "nsga2", 60, options=old)
    assert result.resumed and result.n_validated == 60 and sum(again.calls.values()) == 20
    run(tmp_path, CountingEvaluator(synthetic), "nsga2", 60, options=old, sub="straight")
    keys = lambda d: [r.key for r in RunArchive.open_existing(tmp_path / d).records()]  # noqa: E731
    assert keys("run") == keys("straight")
