"""Fault tolerance of the Ray executor: a worker that dies mid-evaluation, one that keeps
dying, and a driver killed mid-search and resumed.

A local Ray instance with 2 CPUs is started once for the module; the driver-kill test
runs ``linas search`` in subprocesses that join it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from linas.archive import RunArchive
from linas.benchmarks.synthetic_mbv3 import SyntheticMobileNetV3
from linas.config import load_experiment
from linas.evaluator import evaluators
from linas.experiment import Experiment

from helpers import archived_rows, search_process, synthetic_config

STRATEGY = [{"name": "nsga2", "options": {"population": 16}}]


@evaluators.register("ray_test_crash")
class CrashOn(SyntheticMobileNetV3):
    """synthetic_mbv3 whose worker process exits (as in a segfault or an OOM kill) in the
    middle of evaluating ``crash_key``, the first ``crashes`` times it sees it. Marker
    files in ``state_dir`` count the crashes across worker processes; ``state_dir/done``
    gets one line per completed evaluation, to check nothing is validated twice."""

    class Options(SyntheticMobileNetV3.Options):
        crash_key: str = ""
        crashes: int = 1
        state_dir: str = ""

    def __init__(self, space, crash_key: str = "", crashes: int = 1, state_dir: str = "", **options):
        super().__init__(space, **options)
        self.crash_key, self.crashes, self.state_dir = crash_key, crashes, Path(state_dir)

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        if key == self.crash_key:
            n = len(list(self.state_dir.glob("crash*")))
            if n < self.crashes:
                (self.state_dir / f"crash{n}").touch()
                time.sleep(0.05)  # die mid-evaluation, while the other worker is busy too
                os._exit(1)
        metrics = super().evaluate_one(config)
        with open(self.state_dir / "done", "a") as f:  # O_APPEND: whole lines from both workers
            f.write(key + "\n")
        return metrics


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CrashOn travels to workers by value
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield context.address_info["gcs_address"]
    ray.shutdown()


def run(tmp_path, name, executor, evaluator_options=None, budget=40):
    tmp_path.mkdir(parents=True, exist_ok=True)
    synthetic_config(tmp_path, strategies=STRATEGY, budget=budget, output=str(tmp_path / name),
                     evaluator={"name": "ray_test_crash", "options": {"noise": 0.1, **(evaluator_options or {})}},
                     executor=executor)
    experiment = Experiment.build(load_experiment(tmp_path / "exp.yaml"))
    evaluator = experiment.evaluator
    result = experiment.run(progress=False, log=lambda *_: None)[0]
    return result, RunArchive(tmp_path / name / "nsga2" / "seed0").records(), evaluator


def by_key(records):
    return {r.key: (r.status, r.metrics, r.step) for r in records}


def test_a_worker_killed_mid_evaluation_is_replaced_and_its_network_validated_once(ray_cluster, tmp_path):
    _, reference, _ = run(tmp_path / "a", "local", {"name": "local"}, {"state_dir": str(tmp_path / "a")})
    # A network of the second generation: the crash lands mid-search, after the strategy was told.
    crash_key = reference[20].key
    state = tmp_path / "b"
    result, records, evaluator = run(
        tmp_path / "b", "ray", {"name": "ray", "options": {"num_workers": 2, "max_retries": 2}},
        {"state_dir": str(state), "crash_key": crash_key, "crashes": 1})

    assert len(list(state.glob("crash*"))) == 1, "the worker must have died once"
    assert evaluator.replaced == 1
    assert result.n_validated == 40 and result.n_failed == 0
    assert by_key(records) == by_key(reference)  # nothing lost, nothing extra, same measurements
    done = (state / "done").read_text().split()
    assert sorted(done) == sorted(r.key for r in records), "every network validated exactly once"
    assert done.count(crash_key) == 1
    assert result.hypervolume == pytest.approx(RunArchive(tmp_path / "a" / "local" / "nsga2" / "seed0")
                                               .records()[-1].hypervolume, rel=1e-12)


def test_a_network_that_keeps_killing_its_worker_is_recorded_as_failed(ray_cluster, tmp_path):
    _, reference, _ = run(tmp_path / "a", "local", {"name": "local"}, {"state_dir": str(tmp_path / "a")})
    crash_key = reference[3].key
    state = tmp_path / "b"
    result, records, evaluator = run(
        tmp_path / "b", "ray", {"name": "ray", "options": {"num_workers": 2, "max_retries": 1}},
        {"state_dir": str(state), "crash_key": crash_key, "crashes": 100})

    assert len(list(state.glob("crash*"))) == 2, "one try and one retry"
    assert evaluator.replaced == 2
    failed = [r for r in records if not r.ok]
    assert [r.key for r in failed] == [crash_key]
    assert failed[0].error.startswith("the Ray worker died during the evaluation, 2 times")
    assert result.n_validated == 40 and result.n_failed == 1  # the budget counts successes only


# -- the driver killed and resumed ------------------------------------------------------------

def test_a_driver_killed_mid_search_resumes_to_the_same_archive(ray_cluster, tmp_path):
    budget = 64
    # The subprocess drivers join this module's Ray instance (address), as on a cluster.
    config = synthetic_config(tmp_path, strategies=STRATEGY, budget=budget,
                              evaluator={"name": "synthetic_mbv3", "options": {"noise": 0.1, "delay": 0.1}},
                              executor={"name": "ray", "options": {"address": ray_cluster, "num_workers": 2}})
    config_path = tmp_path / "exp.yaml"
    run_dir = tmp_path / "killed" / "nsga2" / "seed0"

    killed = search_process(config_path, tmp_path / "killed")
    deadline = time.time() + 120
    # About 3 s of evaluations on 2 workers; the kill lands after the first generation.
    while archived_rows(run_dir) < 20 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    before = {r.key: r for r in RunArchive(run_dir).records()}
    assert 0 < len(before) < budget, f"the kill must land mid-search: {killed.stderr.read()[-2000:]}"

    resumed = search_process(config_path, tmp_path / "killed")
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    assert "(resumed)" in out

    # The uninterrupted reference runs in process, on the local backend.
    config.update(executor={"name": "local"}, output=str(tmp_path / "straight"))
    config_path.write_text(yaml.safe_dump(config))
    straight = Experiment.build(load_experiment(config_path)).run(progress=False, log=lambda *_: None)[0]

    archive = RunArchive(run_dir)
    after = archive.records()
    reference = RunArchive(tmp_path / "straight" / "nsga2" / "seed0").records()
    assert len(after) == len(reference) == budget
    assert by_key(after) == by_key(reference)
    # What was archived before the kill was kept as it was (same timestamps), not validated again.
    assert all(archive.get(k) == r for k, r in before.items())
    assert after[-1].hypervolume == pytest.approx(straight.hypervolume, rel=1e-12)
