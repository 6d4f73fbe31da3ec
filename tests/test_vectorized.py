"""Vectorized evaluators (``vectorized = True``, ``evaluate_batch``): the same numbers as one at
a time, and the same archives as the per-evaluation path, uninterrupted or killed and resumed."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from linas.archive import EvaluationCache, RunArchive
from linas.benchmarks import ofa_imagenet as oi
from linas.evaluator import Evaluator, Outcome, evaluators
from linas.objectives import Constraint
from linas.runner import run_search
from linas.spaces import get_space
from linas.strategies import make_strategy
from linas.testing import run_spec

from helpers import archived_rows, search_process

FIXTURE = Path(__file__).parent / "fixtures" / "ofa_note10_reference.json.gz"
BOUNDS = [(75.0, 84.0), (9.0, 95.0)]
LIMIT = Constraint("latency", max=20.0)


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_imagenet")


@pytest.fixture(scope="module")
def configs(space):
    with gzip.open(FIXTURE, "rt") as f:
        rows = json.load(f)["subnets"]
    return [oi.config_from_spec({k: row[k] for k in ("ks", "e", "d", "r")}) for row in rows]


def test_ofa_imagenet_batch_equals_one_at_a_time_bit_for_bit(space, configs):
    evaluator = evaluators.get("ofa_imagenet")(space)
    assert evaluator.vectorized
    assert len(configs) >= 1000
    batch = evaluator.evaluate_batch(configs)
    assert len(batch) == len(configs)
    for config, outcome in zip(configs, batch):
        assert outcome.ok
        assert outcome.metrics == evaluator.evaluate_one(config)  # floats compared exactly
    # another batch composition and order gives each network the same bits
    order = np.random.default_rng(0).permutation(len(configs))[:333]
    again = evaluator.evaluate_batch([configs[i] for i in order])
    assert [o.metrics for o in again] == [batch[i].metrics for i in order]
    # the numbers vary (a wrong table index would not go unnoticed)
    assert len({o.metrics["latency"] for o in batch}) > 1000 and len({o.metrics["macs"] for o in batch}) > 1000


def test_a_bad_network_fails_alone(space, configs):
    evaluator = evaluators.get("ofa_imagenet")(space)
    chunk = [configs[0], {**configs[1], "resolution": 300}, configs[2]]
    outcomes = evaluator.guarded_batch(chunk)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "resolution=300" in outcomes[1].error
    assert outcomes[2].metrics == evaluator.evaluate_one(configs[2])


class _Bad(Evaluator):
    metrics = evaluators.get("ofa_imagenet").metrics[:2]
    vectorized = True

    @property
    def identity(self):
        return "bad"

    def evaluate_one(self, config):
        return {"top1": 1.0, "latency": float("nan") if config["resolution"] == 160 else 1.0}

    def evaluate_batch(self, configs):
        return [Outcome(self.evaluate_one(c)) for c in configs]


def test_batch_outcomes_are_checked_like_single_ones(space, configs):
    outcomes = _Bad(space).guarded_batch(configs[:50])
    assert any(not o.ok for o in outcomes) and any(o.ok for o in outcomes)
    for config, outcome in zip(configs, outcomes):
        assert outcome.ok == (config["resolution"] != 160)
        assert outcome.ok or "latency" in outcome.error


def _run(tmp_path: Path, name: str, vectorized: bool, budget: int = 700, cache: EvaluationCache | None = None):
    space = get_space("ofa_imagenet")
    evaluator = evaluators.get("ofa_imagenet")(space)
    calls = []
    if not vectorized:  # the per-evaluation path: evaluate_one per network, one commit each
        evaluator.vectorized = False
        evaluator.evaluate = lambda cs, timeout=None: (calls.append(len(cs)), Evaluator.evaluate(evaluator, cs))[1]
    else:
        batch = evaluator.evaluate_batch
        evaluator.evaluate_batch = lambda cs: (calls.append(len(cs)), batch(cs))[1]
    options = {"population": 100}
    spec = run_spec("ofa_evolution", 0, budget, evaluator.metrics[:2], BOUNDS, options, constraints=[LIMIT],
                    space=space, evaluator="ofa_imagenet")
    strategy = make_strategy("ofa_evolution", spec.problem(space), 0, options)
    result = run_search(tmp_path / name, spec, space, evaluator, strategy, cache=cache, progress=False)
    with RunArchive.open_existing(tmp_path / name) as archive:
        records = archive.records()
    return result, records, calls


def _contents(records):
    return [(r.key, r.status, r.metrics, r.n_validated, r.hypervolume, r.step) for r in records]


def test_vectorized_run_archives_what_the_per_evaluation_path_does(tmp_path):
    one, one_records, one_calls = _run(tmp_path, "one", vectorized=False)
    vec, vec_records, vec_calls = _run(tmp_path, "vec", vectorized=True)
    assert one.n_validated == vec.n_validated == 700
    assert _contents(vec_records) == _contents(one_records)
    assert vec.hypervolume == one.hypervolume > 0
    assert any(r.metrics["latency"] > LIMIT.max for r in vec_records)  # the constraint is active
    assert max(vec_calls) == 100  # whole chunks in one call
    # one transaction per chunk: every record of a chunk has the same timestamp
    assert len({r.timestamp for r in vec_records}) == len(vec_calls)
    assert len({r.timestamp for r in one_records}) > len(vec_calls)


def test_vectorized_run_fills_and_reads_the_cache(tmp_path):
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    first, first_records, _ = _run(tmp_path, "first", vectorized=True, budget=300, cache=cache)
    assert len(cache) == 300
    second, second_records, calls = _run(tmp_path, "second", vectorized=True, budget=300, cache=cache)
    assert calls == []  # everything from the cache
    assert all(r.cached for r in second_records)
    assert _contents(second_records) == _contents(first_records)
    cache.close()


@pytest.mark.slow
def test_vectorized_run_killed_and_resumed_equals_an_uninterrupted_one(tmp_path):
    config = {"name": "vectorized", "space": {"name": "ofa_imagenet"},
              "evaluator": {"name": "ofa_imagenet", "options": {"device": "note10"}},
              "objectives": [{"name": "top1", "bounds": list(BOUNDS[0])},
                             {"name": "latency", "bounds": list(BOUNDS[1])}],
              "constraints": [LIMIT.to_dict()],
              "strategies": [{"name": "ofa_evolution", "options": {"population": 100}}],
              "seeds": [0], "budget": 4000, "output": str(tmp_path / "unused")}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    target = tmp_path / "killed" / "ofa_evolution" / "seed0"
    killed = search_process(path, tmp_path / "killed")
    deadline = time.time() + 300
    while archived_rows(target) < 1000 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_at = archived_rows(target)
    resumed = search_process(path, tmp_path / "killed")
    straight = search_process(path, tmp_path / "straight")
    for p in (resumed, straight):
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with RunArchive.open_existing(tmp_path / "straight" / "ofa_evolution" / "seed0") as archive:
        expected = _contents(archive.records())
    with RunArchive.open_existing(target) as archive:
        got = _contents(archive.records())
    assert 0 < killed_at < len(expected) == 4000
    assert killed_at % 100 == 0  # a chunk is stored whole or not at all
    assert got == expected


def test_a_chunk_is_archived_before_it_is_cached(tmp_path, monkeypatch):
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    order = []
    real_put, real_add = EvaluationCache.put_many, RunArchive.add_many
    monkeypatch.setattr(EvaluationCache, "put_many", lambda self, *a: order.append("cache") or real_put(self, *a))
    monkeypatch.setattr(RunArchive, "add_many", lambda self, *a: order.append("archive") or real_add(self, *a))
    _run(tmp_path, "run", vectorized=True, budget=300, cache=cache)
    assert order == ["archive", "cache"] * 3
    assert len(cache) == 300
    cache.close()
