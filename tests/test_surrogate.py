"""The surrogate evaluator, fitted to measured evaluations in a cache."""

from __future__ import annotations

import numpy as np
import pytest

from linas.archive import EvaluationCache
from linas.errors import ConfigError
from linas.evaluator import make_evaluator


@pytest.fixture
def cache_path(tmp_path, synthetic):
    space = synthetic.space
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    for g in space.sample_unique(np.random.default_rng(0), 300):
        cache.put(synthetic.identity, space.key(g), synthetic.evaluate_one(space.to_config(g)), 1.0)
    cache.close()
    return tmp_path / "cache.sqlite"


def test_surrogate_reproduces_the_measured_landscape(cache_path, synthetic):
    space = synthetic.space
    s = make_evaluator("surrogate", space, {"source": str(cache_path), "metrics": {"top1": "max", "latency": "min"}})
    assert s.n_measured == 300 and s.identity.startswith("surrogate:")
    fidelity = s.fidelity(folds=2)
    assert fidelity["latency"]["kendall_tau"] > 0.6 and fidelity["top1"]["kendall_tau"] > 0.6
    fresh = space.sample_unique(np.random.default_rng(9), 50)
    configs = [space.to_config(g) for g in fresh]
    batch = dict(s.evaluate(configs))
    for i, c in enumerate(configs):  # batched and single predictions agree
        assert batch[i].metrics == pytest.approx(s.evaluate_one(c))
    true = np.array([synthetic.evaluate_one(c)["top1"] for c in configs])
    pred = np.array([batch[i].metrics["top1"] for i in range(50)])
    assert np.corrcoef(true, pred)[0, 1] > 0.7


@pytest.mark.parametrize("options, message", [
    ({"source": "missing.sqlite", "metrics": {"top1": "max"}}, "no such file"),
    ({"metrics": {"energy": "min"}}, "metric(s) ['energy'] missing"),
    ({"metrics": {"top1": "up"}}, "evaluator 'surrogate': metrics.top1: Input should be 'min' or 'max'"),
    ({"metrics": {"top1": "max"}, "source_evaluator": "other"}, "no evaluations of 'other'"),
    ({"metrics": {"top1": "max"}, "model": "oracle"}, "evaluator 'surrogate': model: Input should be 'mlp' or"),
    ({"metrics": {}}, "evaluator 'surrogate': metrics: Dictionary should have at least 1 item"),
    ({}, "evaluator 'surrogate': option 'metrics' is required"),
])
def test_bad_surrogate_options_are_config_errors(cache_path, synthetic, options, message):
    options = {"source": str(cache_path), **options}
    with pytest.raises(ConfigError) as info:
        make_evaluator("surrogate", synthetic.space, options)
    assert message in str(info.value)
