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


def test_a_run_is_locked_by_the_archive_that_writes_it(tmp_path):
    import os

    from linas.errors import LinasError

    writer = RunArchive(tmp_path)
    assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
    with pytest.raises(LinasError, match=f"^run {tmp_path} is in use by process {os.getpid()}$"):
        RunArchive(tmp_path)
    reader = RunArchive.open_existing(tmp_path)  # reports read a running search without the lock
    assert len(reader) == 0
    reader.close()
    writer.close()
    RunArchive(tmp_path).close()  # released on close
    assert RunArchive(tmp_path).records() == []  # and with an archive nobody closed, once it is collected
    RunArchive(tmp_path).close()


def test_a_second_search_of_a_running_experiment_stops_at_once_and_a_killed_one_leaves_no_lock(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from helpers import synthetic_config

    synthetic_config(tmp_path, budget=400, strategies=[{"name": "random", "options": {"population": 10}}],
                     evaluator={"name": "synthetic_mbv3", "options": {"delay": 0.05}})
    command = [sys.executable, "-m", "linas.cli", "search", str(tmp_path / "exp.yaml"), "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "random" / "seed0"
    try:
        deadline = time.time() + 120
        while not (run_dir / "run.lock").exists() or not (run_dir / "run.lock").read_text().strip():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the second stopped while the first still runs (400 x 50 ms)
        assert second.returncode == 2
        assert second.stderr.strip() == f"linas: error: run {run_dir} is in use by process {first.pid}"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    archive = RunArchive(run_dir)  # the kernel released the lock of the killed process
    assert archive.n_validated < 400
    archive.close()
