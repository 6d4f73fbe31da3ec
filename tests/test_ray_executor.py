"""The Ray executor: option checks, parity with the in-process backend, and timeouts.

A local Ray instance with 2 CPUs is started once for the module. Test evaluators
defined here reach the Ray workers by value (cloudpickle), since workers cannot import
this test module.
"""

from __future__ import annotations

import signal
import sys
import time
import zlib

import numpy as np
import pytest

from linas.archive import RunArchive
from linas.benchmarks.synthetic_mbv3 import SyntheticMobileNetV3
from linas.config import load_experiment
from linas.errors import ConfigError
from linas.evaluator import evaluators, make_evaluator
from linas.executors import executors, make_executor
from linas.experiment import Experiment
from linas.spaces import get_space

from helpers import synthetic_config

STRATEGIES = [
    {"name": "linas", "options": {"population": 16, "inner_evaluations": 1000}},
    {"name": "nsga2", "options": {"population": 16}},
]


@evaluators.register("ray_test_jitter")
class Jittered(SyntheticMobileNetV3):
    """synthetic_mbv3 that sleeps 0, 30 or 60 ms depending on the network, so that with
    two running workers evaluations complete out of submission order; measurements unchanged."""

    def evaluate_one(self, config):
        key = self.space.key(self.space.from_config(config))
        time.sleep((zlib.crc32(key.encode()) % 3) * 0.03)
        return super().evaluate_one(config)


@evaluators.register("ray_test_slow")
class SlowOnSome(SyntheticMobileNetV3):
    """synthetic_mbv3 that hangs on configs marked ``hang``; with ``block_alarm`` the hang
    ignores SIGALRM, as a call stuck in C code would."""

    class Options(SyntheticMobileNetV3.Options):
        block_alarm: bool = False

    def __init__(self, space, block_alarm: bool = False, **options):
        super().__init__(space, **options)
        self.block_alarm = block_alarm

    def evaluate_one(self, config):
        if config.get("hang"):
            if self.block_alarm:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
        return super().evaluate_one(config)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # The test evaluators above travel to the workers by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture
def space():
    return get_space("ofa_mbv3")


# -- options (no Ray needed: they are checked before Ray is imported) ---------------------

@pytest.mark.parametrize("options, message", [
    ({"num_workers": 0}, "executor 'ray': num_workers: Input should be greater than or equal to 1"),
    ({"num_workers": 1.5}, "num_workers: Input should be a valid integer"),
    ({"num_cpus": -1}, "num_cpus: Input should be greater than or equal to 0"),
    ({"num_gpus": "one"}, "num_gpus: Input should be a valid number"),
    ({"max_retries": -1}, "max_retries: Input should be greater than or equal to 0"),
    ({"address": "not an address"}, "address: must be null"),
    ({"resources": {"TPU": -1}}, "resources.TPU: Input should be greater than or equal to 0"),
    ({"init_options": {"address": "auto"}}, "give the address as the 'address' option"),
    ({"workers": 2}, "option 'workers' is not known; known: address, num_workers"),
])
def test_bad_options_are_one_line_config_errors(space, options, message):
    with pytest.raises(ConfigError) as err:
        make_executor("ray", "synthetic_mbv3", space, {}, options)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_option_in_the_experiment_config_stops_before_anything_runs(tmp_path):
    synthetic_config(tmp_path, executor={"name": "ray", "options": {"num_workers": 0}})
    with pytest.raises(ConfigError, match="num_workers"):
        Experiment.build(load_experiment(tmp_path / "exp.yaml"))


def test_missing_ray_is_reported_as_an_install_hint(space, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'linas\[ray\]'"):
        make_executor("ray", "synthetic_mbv3", space, {}, {"num_workers": 1})


def test_the_executor_registry_lists_ray_and_linas_imports_without_it():
    assert {"local", "ray"} <= set(executors.names())
    # linas.executors.ray must not import Ray at import time.
    import subprocess

    code = ("import sys; sys.modules['ray'] = None; import linas.executors.ray, linas.experiment; "
            "from linas.executors import executors; print(executors.names())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "'ray'" in out.stdout


# -- with a Ray instance --------------------------------------------------------------------

def test_bad_evaluator_options_are_reported_before_workers_start(space, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # checked on the driver, before Ray is needed
    with pytest.raises(ConfigError, match="evaluator 'synthetic_mbv3': noise: Input should be greater than"):
        make_executor("ray", "synthetic_mbv3", space, {"noise": -1}, {"num_workers": 1})
    with pytest.raises(ConfigError, match="evaluator 'synthetic_mbv3': option 'nosie' is not known"):
        make_executor("ray", "synthetic_mbv3", space, {"nosie": 1}, {"num_workers": 1})


def test_an_evaluator_that_cannot_be_built_on_the_workers_is_reported(ray_cluster, space):
    with pytest.raises(ConfigError, match="needs the ofa_mbv3 space"):
        make_executor("ray", "synthetic_mbv3", get_space("grid"), {}, {"num_workers": 1})


def test_batch_outcomes_equal_in_process_ones(ray_cluster, space):
    configs = [space.to_config(g) for g in space.sample(np.random.default_rng(7), 24)]
    local = make_evaluator("ray_test_jitter", space, {"noise": 0.1})
    remote = make_executor("ray", "ray_test_jitter", space, {"noise": 0.1}, {"num_workers": 2})
    try:
        assert remote.num_workers == 2
        assert remote.identity == local.identity
        assert [m.name for m in remote.metrics] == [m.name for m in local.metrics]
        # The first batch may run on one worker alone while the other is still starting
        # (in order, then); the second runs with both workers up.
        got = dict(remote.evaluate(configs))
        order = [i for i, _ in remote.evaluate(configs)]
    finally:
        remote.close()
    assert sorted(order) == list(range(24))
    assert order != list(range(24)), "with jittered delays on 2 workers, completions come out of order"
    for i, config in enumerate(configs):
        assert got[i].ok and got[i].metrics == local.guarded(config).metrics


def test_search_on_ray_equals_the_in_process_search(ray_cluster, tmp_path):
    """Same seeds, same archive contents: per-network metrics and status, and the final HV."""
    results = {}
    for executor in ("local", "ray"):
        synthetic_config(tmp_path, strategies=STRATEGIES, budget=48,
                         evaluator={"name": "ray_test_jitter", "options": {"noise": 0.1}},
                         executor={"name": executor, "options": {"num_workers": 2} if executor == "ray" else {}},
                         output=str(tmp_path / executor))
        experiment = Experiment.build(load_experiment(tmp_path / "exp.yaml"))
        results[executor] = experiment.run(progress=False, log=lambda *_: None)
    for strategy in ("linas", "nsga2"):
        local = RunArchive(tmp_path / "local" / strategy / "seed0").records()
        remote = RunArchive(tmp_path / "ray" / strategy / "seed0").records()
        assert len(local) == len(remote) == 48
        as_set = lambda records: {(r.key, r.status, tuple(sorted(r.metrics.items())), r.step) for r in records}
        assert as_set(local) == as_set(remote)
        assert [r.key for r in local] != [r.key for r in remote], "completion order should differ on Ray"
        assert remote[-1].n_validated == 48
    for a, b in zip(results["local"], results["ray"]):
        assert b.n_validated == a.n_validated == 48 and b.n_failed == a.n_failed == 0
        assert b.hypervolume == pytest.approx(a.hypervolume, rel=1e-12, abs=1e-15)


def _configs_with_one_hang(space, n=6):
    configs = [space.to_config(g) for g in space.sample(np.random.default_rng(3), n)]
    hang = 2
    configs[hang]["hang"] = True  # read by SlowOnSome only
    return configs, hang


def test_timeout_inside_the_worker_fails_that_network_only(ray_cluster, space):
    configs, hang = _configs_with_one_hang(space)
    remote = make_executor("ray", "ray_test_slow", space, {}, {"num_workers": 2})
    try:
        start = time.monotonic()
        got = dict(remote.evaluate(configs, timeout=1.0))
        elapsed = time.monotonic() - start
        assert remote.replaced == 0  # SIGALRM stopped it; the worker lives on
    finally:
        remote.close()
    assert got[hang].error == "timed out after 1 s"
    assert all(got[i].ok for i in range(len(configs)) if i != hang)
    assert elapsed < 30


def test_an_evaluation_that_ignores_the_timeout_gets_its_worker_replaced(ray_cluster, space, monkeypatch):
    import linas.executors.ray.pool as ray_executor

    monkeypatch.setattr(ray_executor, "KILL_GRACE_MIN", 1.0)  # the driver's grace, shortened for the test
    configs, hang = _configs_with_one_hang(space)
    remote = make_executor("ray", "ray_test_slow", space, {"block_alarm": True}, {"num_workers": 2})
    try:
        start = time.monotonic()
        got = dict(remote.evaluate(configs, timeout=1.0))
        elapsed = time.monotonic() - start
        assert remote.replaced == 1
        # The replacement worker serves the next batch.
        again = dict(remote.evaluate([configs[0], configs[1]], timeout=5.0))
    finally:
        remote.close()
    assert got[hang].error == "timed out after 1 s (the Ray worker was stopped)"
    assert all(got[i].ok for i in range(len(configs)) if i != hang)
    assert elapsed < 30
    assert again[0].ok and again[1].ok
