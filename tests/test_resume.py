"""An interrupted search resumes to the same archive as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import time

from linas.archive import RunArchive

from helpers import archived_rows, search_process, synthetic_config

STRATEGIES = [
    {"name": "linas", "options": {"population": 25, "inner_evaluations": 2000}},
    {"name": "nsga2", "options": {"population": 25}},
]


def contents(run_dir):
    return [(r.key, r.status, r.metrics, r.error, r.n_validated, r.hypervolume)
            for r in RunArchive.open_existing(run_dir).records()]


def test_sigkill_mid_run_then_resume_gives_the_same_archive(tmp_path):
    synthetic_config(tmp_path, strategies=STRATEGIES, budget=130,
                     evaluator={"name": "synthetic_mbv3", "options": {"noise": 0.1, "delay": 0.02}})
    config = tmp_path / "exp.yaml"

    killed = search_process(config, tmp_path / "killed")
    target = tmp_path / "killed" / "linas" / "seed0"
    deadline = time.time() + 120
    while archived_rows(target) < 60 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    n_at_kill = archived_rows(target)
    assert 0 < n_at_kill < 130, "the kill must land in the middle of the first run"

    resumed = search_process(config, tmp_path / "killed")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "(resumed)" in out

    straight = search_process(config, tmp_path / "straight")
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    for strategy in ("linas", "nsga2"):
        a = contents(tmp_path / "killed" / strategy / "seed0")
        b = contents(tmp_path / "straight" / strategy / "seed0")
        assert len(a) == len(b) >= 130
        assert a == b
