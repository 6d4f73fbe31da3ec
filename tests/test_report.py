"""Report helpers: reaching targets, confidence bands, comparison tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from linas.report import hv_matrix, mean_and_ci, validations_to_reach


def test_validations_to_reach_counts_from_one_and_reports_never():
    hv = np.array([0.1, 0.3, 0.3, 0.7, 0.8])
    assert validations_to_reach(hv, 0.3) == 2
    assert validations_to_reach(hv, 0.75) == 5
    assert validations_to_reach(hv, 0.9) is None


def test_confidence_band_is_the_student_t_interval():
    m = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    mean, lo, hi = mean_and_ci(m)
    assert np.allclose(mean, [2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * np.array([1.0, 2.0]) / np.sqrt(3)
    assert np.allclose(hi - mean, half) and np.allclose(mean - lo, half)


def test_a_single_run_has_no_band():
    mean, lo, hi = mean_and_ci(np.array([[0.2, 0.4]]))
    assert np.array_equal(mean, lo) and np.array_equal(mean, hi)


def test_shorter_runs_are_held_at_their_last_value():
    class R:
        def __init__(self, hv):
            self.hv = np.array(hv)

    m = hv_matrix([R([0.1, 0.2, 0.3]), R([0.5])])
    assert m.tolist() == [[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]]



class FakeRun:
    """What compare_runs reads of a run."""

    def __init__(self, label, seed, reach_at, length=60):
        self.label, self.seed, self.targets, self.wall_time_s = label, seed, [], 1.0
        self.search_s_per_validation = 0.01
        self.spec = type("Spec", (), {"constraints": ()})()  # unconstrained
        self.hv = np.full(length, 0.4)
        if reach_at is not None:
            self.hv[reach_at - 1:] = 0.6

    @property
    def final_hv(self):
        return float(self.hv[-1])


def reach_rows(comparison, target=0.5):
    return comparison.reach[comparison.reach["target_hv"] == target].set_index("strategy")


def values(column):
    return [None if x is None or x != x else x for x in column]  # NaN or None: no value


def test_runs_that_never_reach_a_target_are_censored_at_their_budget_not_dropped():
    from linas.report import compare_runs

    runs = ([FakeRun("a", s, n) for s, n in enumerate([10, 20, 30])]
            + [FakeRun("b", s, n) for s, n in enumerate([40, None, None])]
            + [FakeRun("c", s, n) for s, n in enumerate([10, 50, None])])
    rows = reach_rows(compare_runs(runs, [0.5]))
    assert rows["reached"].tolist() == ["3/3", "1/3", "2/3"]
    assert rows.loc["a", "median_validations"] == 20
    assert rows.loc["b", "median_validations"] == "> 60"  # most runs of b needed more than their 60
    assert rows.loc["c", "median_validations"] == 50  # the median falls on a run that reached it
    assert rows.loc["b", "per_seed"] == "40 >60 >60"
    assert rows.loc["b", "mean_validations"] == 40  # of the runs that reached it
    # Speed-ups of the reference (the first strategy, a): a lower bound against b's censored median.
    assert values(rows["a_speedup"]) == [None, "> 3", 2.5]

    rows = reach_rows(compare_runs(runs, [0.5], reference="b"))
    assert values(rows["b_speedup"]) == ["< 0.333", None, "< 0.833"]  # b's own median is a lower bound
    nobody = reach_rows(compare_runs(runs, [0.7]), 0.7)
    assert nobody["reached"].tolist() == ["0/3"] * 3 and values(nobody["a_speedup"]) == [None] * 3


def test_an_unknown_reference_strategy_is_one_line():
    from linas.errors import LinasError
    from linas.report import compare_runs

    with pytest.raises(LinasError, match="reference strategy 'linas' is not among the runs: a, b"):
        compare_runs([FakeRun("a", 0, 5), FakeRun("b", 0, 5)], [0.5], reference="linas")


def test_compare_warns_about_unfinished_runs_and_writes_censored_tables(tmp_path, capsys):
    import sqlite3

    from linas.cli import main

    from helpers import synthetic_config

    synthetic_config(tmp_path, budget=6, seeds=[0, 1], strategies=[{"name": "random", "options": {"population": 6}},
                                                                   {"name": "nsga2", "options": {"population": 6}}])
    assert main(["search", str(tmp_path / "exp.yaml"), "--no-progress"]) == 0
    runs = tmp_path / "runs"
    with sqlite3.connect(runs / "random" / "seed1" / "archive.sqlite") as conn:  # as if killed short of 12
        conn.execute("UPDATE meta SET value = '12' WHERE name = 'budget'")
    with sqlite3.connect(runs / "nsga2" / "seed1" / "archive.sqlite") as conn:  # ran out of networks at 6
        conn.execute("UPDATE meta SET value = '12' WHERE name = 'budget'")
        conn.execute("""UPDATE meta SET value = '"exhausted"' WHERE name = 'status'""")
    capsys.readouterr()
    assert main(["compare", str(runs), "-o", str(tmp_path / "cmp"), "--targets", "0.99",
                 "--reference", "random"]) == 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"linas: warning: {runs / 'random' / 'seed1'}: random seed 1 is unfinished "
                                        "(6 of 12 validations)"]
    assert "> 6" in out and "random_speedup" in out  # nobody reaches 0.99: censored at 6
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert ">6 >6" in md and "a lower bound" in md
    assert main(["compare", str(runs), "-o", str(tmp_path / "cut"), "--budget", "6"]) == 0
    assert capsys.readouterr().err == ""  # as they stood after 6 validations, every run was complete
    assert main(["compare", str(runs), "--reference", "annealing"]) == 2
    assert "reference strategy 'annealing' is not among the runs" in capsys.readouterr().err


def _constrained_run(tmp_path, synthetic, limit):
    from linas.objectives import Constraint
    from linas.report import load_run
    from linas.runner import run_search
    from linas.strategies import make_strategy
    from linas.testing import run_spec

    spec = run_spec("random", 0, 40, synthetic.metrics[:2], [(60, 80), (10, 160)], {"population": 20},
                    constraints=[Constraint("latency", max=limit)], space=synthetic.space)
    strategy = make_strategy("random", spec.problem(synthetic.space), 0, {"population": 20})
    run_search(tmp_path / "run", spec, synthetic.space, synthetic, strategy, progress=False)
    return load_run(tmp_path / "run")


def test_fronts_and_best_values_keep_to_the_constraints(tmp_path, synthetic):
    from linas.report import best_under_constraints, pareto_front

    with _constrained_run(tmp_path, synthetic, 50.0) as run:
        latency = run.values[:, 1]
        assert (latency > 50).any() and (latency <= 50).any()
        assert (pareto_front(run)[:, 1] <= 50).all()
        table = best_under_constraints([run]).set_index("objective")
        assert table.loc["top1 (%)", "best"] == pytest.approx(run.values[latency <= 50, 0].max())
        assert table.loc["latency (ms)", "best"] == pytest.approx(latency.min())
        assert table.loc["top1 (%)", "constraint"] == "latency <= 50"


def test_search_overhead_is_wall_time_minus_measured_evaluations(tmp_path, synthetic):
    import pandas as pd

    from linas.report import load_run

    run = _constrained_run(tmp_path, synthetic, 200.0)
    records = run.archive.records()
    measured = sum(r.wall_time for r in records if not r.cached)
    assert 0 < measured < run.wall_time_s
    assert run.search_s_per_validation == pytest.approx((run.wall_time_s - measured) / len(run.hv))
    assert np.isnan(load_run(tmp_path / "run", budget=20).search_s_per_validation)  # wall time at 20 is unknown
    table = pd.read_csv(_compare_to(tmp_path, run), index_col="strategy")
    assert table.loc["random", "search_s_per_validation"] == pytest.approx(run.search_s_per_validation)


def _compare_to(tmp_path, run):
    from linas.cli import main

    assert main(["compare", str(run.path), "-o", str(tmp_path / "cmp")]) == 0
    return tmp_path / "cmp" / "final_hv.csv"
