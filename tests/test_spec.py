"""Run specs and problems: what a run is, stored and read back, old archives included."""

from __future__ import annotations

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import Constraint, Objective
from linas.spec import Problem, RunSpec, check_reference_point
from linas.testing import run_spec

OBJECTIVES = (Objective("top1", "max", "%", (60, 80)), Objective("latency", "min", "ms", (10, 160)))


def test_a_spec_survives_a_round_trip():
    spec = run_spec("linas", 3, 100, OBJECTIVES, options={"population": 20},
                    constraints=[Constraint("latency", max=25.0)], reference_point=[1.1, 1.0])
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_the_resume_key_of_a_spec_without_constraints_is_the_old_settings_shape():
    key = run_spec("random", 0, 10, OBJECTIVES).resume_key()
    assert set(key) == {"space", "evaluator", "objectives", "reference_point", "strategy", "seed"}
    assert "constraints" in run_spec("random", 0, 10, OBJECTIVES, constraints=[Constraint("top1", min=70)]
                                     ).resume_key()


def test_a_spec_is_read_from_an_archive_written_before_specs():
    meta = {"settings": {"space": {"name": "ofa_mbv3", "options": {}},
                         "evaluator": {"name": "synthetic_mbv3", "options": {"noise": 0.1}},
                         "objectives": [{"name": "top1", "bounds": [60, 80]}, {"name": "latency", "bounds": [10, 160]}],
                         "reference_point": [1.0, 1.0], "strategy": {"name": "linas", "options": {}, "label": None},
                         "seed": 2},
            "objectives": [{"name": "top1", "direction": "max", "unit": "%"},
                           {"name": "latency", "direction": "min", "unit": "ms"}],
            "seed": 2, "budget": 300, "targets": [0.7], "evaluator": "synthetic_mbv3:noise=0.1"}
    spec = RunSpec.from_meta(meta)
    assert spec.objectives == OBJECTIVES
    assert (spec.seed, spec.budget, spec.targets, spec.label) == (2, 300, (0.7,), "linas")


def test_a_run_stopped_before_its_settings_were_written_is_a_config_error():
    with pytest.raises(ConfigError, match="stopped before its settings were written"):
        RunSpec.from_meta({}, where="runs/x")


@pytest.mark.parametrize("ref, message", [([-1.0, -1.0], "outside the normalized box"),
                                          ([1.0, float("nan")], "outside the normalized box"),
                                          ([1.0], "needs 2 values")])
def test_bad_reference_points_are_refused(ref, message):
    with pytest.raises(ConfigError, match=message):
        check_reference_point(ref, 2)


def test_a_problem_normalizes_minimization_rows_by_the_objective_bounds(toy_space):
    problem = Problem(toy_space, OBJECTIVES)
    F = np.array([[-80.0, 10.0], [-60.0, 160.0], [-70.0, 85.0]])  # maximized top1 told negated
    np.testing.assert_allclose(problem.normalize(F), [[0, 0], [1, 1], [0.5, 0.5]])


def test_a_constraint_violation_is_the_distance_outside():
    c = Constraint("latency", min=5.0, max=25.0)
    assert c.violation(20.0) <= 0 and c.violation(30.0) == 5.0 and c.violation(1.0) == 4.0
    with pytest.raises(ValueError, match="needs 'min' or 'max'"):
        Constraint("latency")
