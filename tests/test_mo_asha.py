"""Multi-fidelity successive halving (mo_asha), fidelity in evaluators, and budget accounting."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from linas.archive import EvaluationCache, RunArchive
from linas.errors import ConfigError
from linas.evaluator import fidelity_identity
from linas.mo import best_first
from linas.objectives import Constraint, Objective
from linas.runner import run_search
from linas.spec import Problem
from linas.strategies import make_strategy
from linas.strategies.mo_asha import rung_fidelities
from linas.testing import run_spec

from helpers import Counting

BOUNDS = [(60, 80), (10, 160)]


class FullOnly(Counting):
    supports_fidelity = False


def run(tmp_path, evaluator, budget, options=None, seed=0, sub="run", cache=None, constraints=()):
    options = {"population": 27, **(options or {})}
    spec = run_spec("mo_asha", seed, budget, Counting.metrics, BOUNDS, options, constraints=constraints,
                    space=evaluator.space)
    strategy = make_strategy("mo_asha", spec.problem(evaluator.space), seed, options)
    return run_search(tmp_path / sub, spec, evaluator.space, evaluator, strategy, cache=cache, progress=False)


def by_fidelity(run_dir) -> Counter:
    return Counter(r.fidelity for r in RunArchive.open_existing(run_dir).low_fidelity_records())


# ----------------------------------------------------------------------------- rungs
def test_rungs_are_at_a_ninth_a_third_and_full_fidelity():
    assert rung_fidelities(3, 1 / 9) == [1 / 9, 1 / 3, 1.0]
    assert rung_fidelities(2, 1 / 8) == [1 / 8, 1 / 4, 1 / 2, 1.0]
    assert rung_fidelities(3, 0.2) == [0.2, 0.6, 1.0]
    assert rung_fidelities(3, 1.0) == [1.0]


def test_a_bracket_halves_by_eta(mbv3_space):
    strategy = make_strategy("mo_asha", Problem.simple(mbv3_space, 2), 0, {"population": 27})
    assert strategy.sizes == [27, 9, 3]
    assert strategy.min_fidelity == 1 / 9


@pytest.mark.parametrize("options, error", [
    ({"eta": 1}, "eta"), ({"min_fidelity": 0}, "min_fidelity"), ({"min_fidelity": 1.5}, "min_fidelity"),
    ({"population": 1}, "population")])
def test_bad_options_are_one_line_errors(mbv3_space, options, error):
    with pytest.raises(ConfigError, match=error) as info:
        make_strategy("mo_asha", Problem.simple(mbv3_space, 2), 0, options)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- budget
def test_budget_10_with_27_networks_per_bracket(tmp_path, synthetic):
    """Bracket 1: 27 at 1/9 (3) + 9 at 1/3 (3) + 3 validations (3) = 9; bracket 2: the 9 of its
    27 networks at 1/9 that the last unit of budget pays for. 3 + 36/9 + 9/3 = 10."""
    evaluator = Counting(synthetic)
    result = run(tmp_path, evaluator, budget=10)
    assert result.n_validated == 3
    assert by_fidelity(result.run_dir) == Counter({1 / 9: 36, 1 / 3: 9})
    assert result.spent == pytest.approx(10)
    assert sum(n for (_, f), n in evaluator.calls.items() if f == 1) == 3
    assert max(evaluator.calls.values()) == 1


def test_budget_30_with_eta_2(tmp_path, synthetic):
    """population 8, eta 2, min_fidelity 1/4: rungs of 8 at 1/4 (2), 4 at 1/2 (2), 2 at 1 (2): 6 per
    bracket; 5 brackets spend 30: 10 validations, 40 evaluations at 1/4, 20 at 1/2."""
    result = run(tmp_path, Counting(synthetic), budget=30, options={"population": 8, "eta": 2,
                                                                   "min_fidelity": 0.25})
    assert result.n_validated == 10
    assert by_fidelity(result.run_dir) == Counter({0.25: 40, 0.5: 20})
    assert result.spent == 30


def test_a_run_never_overspends(tmp_path, synthetic):
    """Budget 4: bracket 1 spends 3 + 3 (27 at 1/9, 9 at 1/3) = 6 > 4: the 9 evaluations at 1/3
    are cut to those 1 unit pays for (3), after the 27 at 1/9 (3 units): 3 + 1 = 4, no validation."""
    result = run(tmp_path, Counting(synthetic), budget=4)
    assert result.n_validated == 0
    assert by_fidelity(result.run_dir) == Counter({1 / 9: 27, 1 / 3: 3})
    assert result.spent == pytest.approx(4) and result.spent <= 4 + 1e-9


def test_failures_are_free(tmp_path, synthetic):
    evaluator = Counting(synthetic, fail_every=4)
    result = run(tmp_path, evaluator, budget=20)
    archive = RunArchive.open_existing(result.run_dir)
    low = archive.low_fidelity_records()
    failed = [r for r in low if not r.ok]
    assert failed and all(r.error == "RuntimeError: broken network" for r in failed)
    assert result.spent == pytest.approx(archive.n_validated + sum(r.fidelity for r in low if r.ok))
    assert 19 < result.spent <= 20 + 1e-9
    assert max(evaluator.calls.values()) == 1


def test_low_fidelity_results_never_enter_the_hypervolume_or_the_validation_count(tmp_path, synthetic):
    from linas.hypervolume import HypervolumeTracker, Normalizer
    from linas.objectives import feasible

    result = run(tmp_path, Counting(synthetic), budget=20)
    archive = RunArchive.open_existing(result.run_dir)
    records = archive.records()
    assert [r.n_validated for r in records] == list(range(1, len(records) + 1))
    low_keys = {r.key for r in archive.low_fidelity_records()}
    assert low_keys - {r.key for r in records}  # most networks never reach a validation
    spec = run_spec("mo_asha", 0, 20, Counting.metrics, BOUNDS)
    tracker = HypervolumeTracker(Normalizer(spec.objectives), spec.reference_point)
    for r in records:
        assert r.hypervolume == tracker.add([r.metrics["top1"], r.metrics["latency"]], feasible((), r.metrics))
    assert result.hypervolume == tracker.value


def test_a_larger_budget_extends_a_run_exactly_like_a_longer_run(tmp_path, synthetic):
    """Budget 10 stops in the middle of a bracket's lowest rung; raised to 25, the run goes on
    from there and ends as one run of 25."""
    run(tmp_path, Counting(synthetic), 10, sub="extended")
    first = RunArchive.open_existing(tmp_path / "extended")
    done = {(r.key, 1.0) for r in first.records()} | {(r.key, r.fidelity) for r in first.low_fidelity_records()}
    again = Counting(synthetic)
    result = run(tmp_path, again, 25, sub="extended")
    assert result.resumed and result.spent == pytest.approx(25)
    run(tmp_path, Counting(synthetic), 25, sub="straight")

    def contents(d):
        a = RunArchive.open_existing(tmp_path / d)
        return ([(r.key, r.metrics, r.hypervolume) for r in a.records()],
                [(r.key, r.fidelity, r.metrics) for r in a.low_fidelity_records()])

    assert contents("extended") == contents("straight")
    assert max(again.calls.values()) == 1 and not set(again.calls) & done  # nothing evaluated twice


# ----------------------------------------------------------------------------- promotion
def test_promotion_is_by_non_dominated_rank_then_crowding(mbv3_space):
    strategy = make_strategy("mo_asha", Problem.simple(mbv3_space, 2), 0, {"population": 9})
    first = strategy.ask()
    assert strategy.fidelity == 1 / 9 and len(first) == 9
    # Front 0: rows 0, 1, 2 (a staircase); front 1: rows 3, 4; the rest dominated; row 8 failed.
    F = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.6, 0.6], [0.95, 0.2], [0.7, 0.8],
                  [0.8, 0.9], [0.99, 0.99], [np.nan, np.nan]])
    strategy.tell(first, F)
    promoted = strategy.ask()
    assert strategy.fidelity == 1 / 3
    assert mbv3_space.keys(promoted) == mbv3_space.keys(first[[0, 1, 2]])
    strategy.tell(promoted, F[[1, 0, 2]])
    top = strategy.ask()
    # One network at full fidelity: of a front of three, crowding keeps an extreme first.
    assert strategy.fidelity == 1 and len(top) == 1
    assert mbv3_space.keys(top) == mbv3_space.keys(promoted[best_first(F[[1, 0, 2]], 1)])
    assert mbv3_space.keys(top)[0] in mbv3_space.keys(promoted[[1, 2]])


def test_promotion_puts_feasible_networks_first(mbv3_space):
    problem = Problem(mbv3_space, (Objective("f1", "min", bounds=(0, 1)), Objective("f2", "min", bounds=(0, 1))),
                      constraints=(Constraint("latency", max=30.0),))
    strategy = make_strategy("mo_asha", problem, 0, {"population": 6, "eta": 3})
    first = strategy.ask()
    F = np.array([[0.1, 0.1], [0.2, 0.2], [0.9, 0.9], [0.8, 0.95], [0.3, 0.3], [0.95, 0.8]])
    G = np.array([[5.0], [1.0], [-1.0], [-2.0], [0.5], [-3.0]])  # rows 0, 1, 4 violate the constraint
    strategy.tell(first, F, G)
    promoted = strategy.ask()
    # The feasible rows 2, 3, 5 form one front; crowding keeps its two extremes, 3 and 5.
    assert sorted(mbv3_space.keys(promoted)) == sorted(mbv3_space.keys(first[[3, 5]]))


def test_a_bracket_with_nothing_to_promote_starts_over(mbv3_space):
    strategy = make_strategy("mo_asha", Problem.simple(mbv3_space, 2), 0, {"population": 9})
    first = strategy.ask()
    strategy.tell(first, np.full((9, 2), np.nan))
    second = strategy.ask()
    assert strategy.fidelity == 1 / 9 and len(second) == 9
    assert not set(mbv3_space.keys(second)) & set(mbv3_space.keys(first))


def test_state_dict_restores_the_bracket(mbv3_space):
    problem = Problem.simple(mbv3_space, 2)
    a = make_strategy("mo_asha", problem, 3, {"population": 9})
    rng = np.random.default_rng(0)
    for _ in range(4):  # 9 at 1/9, 3 at 1/3, 1 validation, then 9 new at 1/9
        g = a.ask()
        F = rng.random((len(g), 2))
        F[0] = np.nan
        a.tell(g, F)
    b = make_strategy("mo_asha", problem, 3, {"population": 9})
    b.restore(a.genomes, a.F, a.G, a.step, a.state_dict())
    for _ in range(3):
        ga, gb = a.ask(), b.ask()
        assert a.fidelity == b.fidelity and mbv3_space.keys(ga) == mbv3_space.keys(gb)
        F = rng.random((len(ga), 2))
        a.tell(ga, F)
        b.tell(gb, F)


# ----------------------------------------------------------------------------- evaluators and cache
def test_an_evaluator_without_fidelity_is_refused_in_one_line(tmp_path, synthetic):
    with pytest.raises(ConfigError, match="no lower fidelity") as info:
        run(tmp_path, FullOnly(synthetic), budget=10)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no lower fidelity"):
        list(FullOnly(synthetic).evaluate([{}], fidelity=0.5))


@pytest.mark.parametrize("fidelity", [0, -0.5, 1.5, float("nan")])
def test_a_fidelity_outside_0_1_is_refused(synthetic, fidelity):
    with pytest.raises(ConfigError, match=r"fidelity must be a number in \(0, 1\]"):
        list(synthetic.evaluate([{}], fidelity=fidelity))


def test_the_cache_keys_low_fidelity_results_by_fidelity(tmp_path, synthetic):
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    evaluator = Counting(synthetic)
    run(tmp_path, evaluator, budget=10, cache=cache, sub="a")
    identities = {row[0] for row in cache._conn.execute("SELECT evaluator FROM cache")}
    assert identities == {evaluator.identity, fidelity_identity(evaluator.identity, 1 / 9),
                          fidelity_identity(evaluator.identity, 1 / 3)}
    again = Counting(synthetic)
    result = run(tmp_path, again, budget=10, cache=cache, sub="b")
    archive = RunArchive.open_existing(result.run_dir)
    assert sum(again.calls.values()) == 0  # every measurement, at every fidelity, from the cache
    assert all(r.cached for r in archive.records() + archive.low_fidelity_records())
    assert fidelity_identity("x", 1.0) == "x" != fidelity_identity("x", 1 / 3)


def test_synthetic_fidelity_adds_noise_of_the_stated_size(mbv3_space, synthetic):
    configs = [mbv3_space.to_config(g) for g in mbv3_space.sample_unique(np.random.default_rng(0), 2000)]
    full = np.array([synthetic.evaluate_one(c)["top1"] for c in configs])
    assert np.array_equal(full, [synthetic.evaluate_one(c, fidelity=1.0)["top1"] for c in configs])
    for f in (1 / 9, 1 / 3, 0.8):
        low = [synthetic.evaluate_one(c, fidelity=f) for c in configs]
        delta = np.array([m["top1"] for m in low]) - full
        expected = 0.5 * np.sqrt((1 - f) / f)  # 1.41 at 1/9, 0.71 at 1/3, 0.25 at 0.8
        assert abs(delta.std() / expected - 1) < 0.05 and abs(delta.mean()) < 0.1 * expected
        assert [m["latency"] for m in low] == [synthetic.evaluate_one(c)["latency"] for c in configs]
        assert [m["top1"] for m in low] == [synthetic.evaluate_one(c, fidelity=f)["top1"] for c in configs]


# ----------------------------------------------------------------------------- archive
def test_an_archive_without_low_fidelity_evaluations_has_no_such_table(tmp_path, synthetic):
    spec = run_spec("random", 0, 5, Counting.metrics, BOUNDS, {"population": 5})
    strategy = make_strategy("random", spec.problem(synthetic.space), 0, {"population": 5})
    result = run_search(tmp_path / "r", spec, synthetic.space, Counting(synthetic), strategy, progress=False)
    archive = RunArchive.open_existing(result.run_dir)
    tables = {t for (t,) in archive._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "low_fidelity" not in tables and result.spent == archive.spent == 5


def test_the_wall_time_is_committed_with_each_record(tmp_path):
    with RunArchive(tmp_path) as archive:
        archive.add("a", {}, {"x": 1.0}, None, 0.1, False, 0, 0.5, {"wall_time_s": 1.5})
        archive.add_low_fidelity("b", 0.25, {}, {"x": 1.0}, None, 0.1, False, 0, {"wall_time_s": 2.5})
    archive = RunArchive.open_existing(tmp_path)
    assert archive.meta()["wall_time_s"] == 2.5
    assert archive.spent == 1.25 and archive.get_low_fidelity("b", 0.25).n_validated == 1


# ----------------------------------------------------------------------------- reports
def test_compare_puts_budget_spent_on_the_x_axis(tmp_path, synthetic):
    """Budget 10, 27 per bracket: 27 at 1/9 and 9 at 1/3 (6) come before the 3 validations, which
    are at budget 7, 8 and 9; the 9 at 1/9 after them bring it to 10."""
    from linas.report import compare_runs, hv_matrix, load_run

    run(tmp_path, Counting(synthetic), budget=10, sub="mo_asha")
    spec = run_spec("random", 0, 10, Counting.metrics, BOUNDS, {"population": 5})
    strategy = make_strategy("random", spec.problem(synthetic.space), 0, {"population": 5})
    run_search(tmp_path / "random", spec, synthetic.space, Counting(synthetic), strategy, progress=False)
    with load_run(tmp_path / "mo_asha") as mo, load_run(tmp_path / "random") as rs:
        assert mo.budget_axis.tolist() == pytest.approx([7, 8, 9]) and mo.budget_spent == pytest.approx(10)
        assert not rs.has_low_fidelity and rs.budget_axis.tolist() == list(range(1, 11))
        m = hv_matrix([mo])
        assert m.shape == (1, 10)
        assert m[0].tolist() == [0.0] * 6 + [mo.hv[0], mo.hv[1], mo.hv[2], mo.hv[2]]
        assert hv_matrix([rs]).tolist() == [rs.hv.tolist()]
        target = float(mo.hv[1])
        comparison = compare_runs([mo, rs], targets=[target])
        reach = comparison.reach[comparison.reach["target_hv"] == target]
        row = reach.set_index("strategy").loc["mo_asha"]
        assert row["median_budget"] == pytest.approx(8) and "median_validations" not in comparison.reach
        assert comparison.final.set_index("strategy").loc["mo_asha", "budget_spent"] == pytest.approx(10)
    with load_run(tmp_path / "mo_asha", budget=8) as cut:
        assert len(cut.hv) == 2 and cut.budget_spent == 8


def test_ray_workers_evaluate_at_the_fidelity_asked(mbv3_space, synthetic):
    pytest.importorskip("ray")
    from linas.executors import make_executor

    configs = [mbv3_space.to_config(g) for g in mbv3_space.sample(np.random.default_rng(5), 6)]
    remote = make_executor("ray", "synthetic_mbv3", mbv3_space, {"noise": 0.1}, {"num_workers": 1})
    try:
        assert remote.supports_fidelity
        got = dict(remote.evaluate(configs, fidelity=1 / 3))
    finally:
        remote.close()
    for i, config in enumerate(configs):
        assert got[i].ok and got[i].metrics == synthetic.guarded(config, None, 1 / 3).metrics
        assert got[i].metrics != synthetic.guarded(config).metrics
