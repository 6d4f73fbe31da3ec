"""Bad inputs and faults: each ends as a failed evaluation or as one line and exit status 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from linas.evaluator import Evaluator
from linas.objectives import Objective


class Returns(Evaluator):
    """Returns whatever ``make`` gives for a config (or raises what it raises)."""

    metrics = (Objective("top1", "max"), Objective("latency", "min"))

    def __init__(self, space, make):
        super().__init__(space)
        self.make = make

    @property
    def identity(self) -> str:
        return "returns"

    def evaluate_one(self, config):
        return self.make()


@pytest.mark.parametrize("value", [np.float32(71.5), np.float64(71.5), np.int64(71), 71])
def test_numpy_and_integer_metrics_are_stored_as_python_floats(toy_space, value):
    outcome = Returns(toy_space, lambda: {"top1": value, "latency": np.float32(3.25)}).guarded({})
    assert outcome.ok, outcome.error
    assert outcome.metrics == {"top1": float(value), "latency": 3.25}
    assert all(type(v) is float for v in outcome.metrics.values())
    json.dumps(outcome.metrics)  # what the archive does with them


@pytest.mark.parametrize("value, message", [
    ("71.5", "metric 'top1' is a str ('71.5'), not a number"),
    (None, "metric 'top1' is a NoneType (None), not a number"),
    (True, "metric 'top1' is a bool (True), not a number"),
    ([71.5], "metric 'top1' is a list ([71.5]), not a number"),
    (float("nan"), "metric 'top1' is nan (float)"),
    (np.float32("inf"), "metric 'top1' is inf (float32)"),
])
def test_non_numeric_or_non_finite_metrics_fail_the_evaluation_naming_the_metric_and_type(toy_space, value,
                                                                                          message):
    outcome = Returns(toy_space, lambda: {"top1": value, "latency": 3.0}).guarded({})
    assert not outcome.ok and outcome.metrics == {}
    assert outcome.error == message


def test_an_evaluation_that_returns_no_mapping_fails(toy_space):
    outcome = Returns(toy_space, lambda: 71.5).guarded({})
    assert outcome.error == "the evaluation returned a float, not a mapping of metrics"


def test_system_exit_in_an_evaluator_is_a_failed_evaluation_but_ctrl_c_stops(toy_space):
    outcome = Returns(toy_space, lambda: sys.exit(3)).guarded({})
    assert not outcome.ok and outcome.error == "SystemExit: 3"

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Returns(toy_space, interrupt).guarded({})
