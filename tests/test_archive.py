"""The run archive and the evaluation cache."""

from __future__ import annotations

import pytest

from linas.archive import EvaluationCache, RunArchive
from linas.errors import ConfigError


def test_records_survive_reopening_in_order(tmp_path):
    a = RunArchive(tmp_path)
    a.bind({"seed": 0}, {"versions": {"x": "1"}})
    a.add("k1", {"v": 1}, {"m": 1.0}, None, 0.5, False, 0, 0.1)
    a.add("k2", {"v": 2}, {}, "boom", 0.1, False, 0, None)
    a.add("k3", {"v": 3}, {"m": 2.0}, None, 0.5, True, 1, 0.2)
    a.close()
    b = RunArchive(tmp_path)
    assert [r.key for r in b.records()] == ["k1", "k2", "k3"]
    assert [r.n_validated for r in b.records()] == [1, 1, 2]
    assert b.n_validated == 2 and b.get("k2").error == "boom" and b.get("k3").cached
    assert b.meta()["versions"] == {"x": "1"}


def test_a_config_key_is_stored_once(tmp_path):
    a = RunArchive(tmp_path)
    a.add("k1", {}, {"m": 1.0}, None, 0.0, False, 0, 0.0)
    with pytest.raises(ValueError, match="already in the archive"):
        a.add("k1", {}, {"m": 1.0}, None, 0.0, False, 0, 0.0)


def test_binding_to_other_settings_is_refused(tmp_path):
    a = RunArchive(tmp_path)
    assert a.bind({"seed": 0}, {}) is False
    assert a.bind({"seed": 0}, {}) is True
    with pytest.raises(ConfigError, match="other settings"):
        a.bind({"seed": 1}, {})


def test_diagnostics_merge_fit_and_holdout_fields(tmp_path):
    a = RunArchive(tmp_path)
    a.add_diagnostic(1, "top1", {"predictor": "ridge", "n_train": 50, "cv_error": 0.3, "fit_seconds": 0.01})
    a.add_diagnostic(1, "top1", {"kendall_tau": 0.8, "mae": 0.2, "n_test": 50})
    (row,) = a.diagnostics()
    assert row["predictor"] == "ridge" and row["n_train"] == 50 and row["kendall_tau"] == 0.8


def test_cache_is_keyed_by_evaluator_identity(tmp_path):
    c = EvaluationCache(tmp_path / "c.sqlite")
    c.put("eval-a", "k", {"m": 1.0}, 2.0)
    assert c.get("eval-a", "k") == ({"m": 1.0}, 2.0)
    assert c.get("eval-b", "k") is None
    c.put("eval-a", "k", {"m": 9.0}, 2.0)  # first measurement wins
    assert c.get("eval-a", "k") == ({"m": 1.0}, 2.0) and len(c) == 1


def test_opening_a_folder_without_an_archive_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        RunArchive.open_existing(tmp_path)
