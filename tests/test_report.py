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

