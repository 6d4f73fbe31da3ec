"""The surrogate evaluator fitted from a CSV, and exact metrics mixed with predicted ones."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from linas.archive import EvaluationCache
from linas.errors import ConfigError
from linas.evaluator import make_evaluator
from linas.spaces import get_space, ofa_mbv3

METRICS = {"top1": "max", "latency": "min"}


@pytest.fixture(scope="module")
def measured(mbv3_space, synthetic):
    genomes = mbv3_space.sample_unique(np.random.default_rng(0), 200)
    configs = [mbv3_space.to_config(g) for g in genomes]
    return configs, [synthetic.evaluate_one(c) for c in configs]


def write_columns(path, space, configs, metrics):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["status", *space.names, "top1", "latency"])
        for c, m in zip(configs, metrics):
            w.writerow(["ok", *[c[n] for n in space.names], m["top1"], m["latency"]])
    return path


def test_a_csv_fits_the_same_surrogate_as_the_cache(tmp_path, mbv3_space, synthetic, measured):
    configs, metrics = measured
    cache = EvaluationCache(tmp_path / "cache.sqlite")
    for c, m in zip(configs, metrics):
        cache.put(synthetic.identity, mbv3_space.key(mbv3_space.from_config(c)), m, 1.0)
    cache.close()
    from_cache = make_evaluator("surrogate", mbv3_space, {"source": str(tmp_path / "cache.sqlite"),
                                                          "metrics": METRICS, "model": "extra_trees"})
    path = write_columns(tmp_path / "measured.csv", mbv3_space, configs, metrics)
    from_csv = make_evaluator("surrogate", mbv3_space, {"source": str(path), "metrics": METRICS,
                                                        "model": "extra_trees"})
    assert from_csv.n_measured == 200
    np.testing.assert_array_equal(from_csv.X, from_cache.X)  # same rows in the same order
    np.testing.assert_array_equal(from_csv.Y, from_cache.Y)
    fresh = [mbv3_space.to_config(g) for g in mbv3_space.sample(np.random.default_rng(5), 20)]
    assert [o.metrics for _, o in from_csv.evaluate(fresh)] == [o.metrics for _, o in from_cache.evaluate(fresh)]
    gz = tmp_path / "measured.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert make_evaluator("surrogate", mbv3_space, {"source": str(gz), "metrics": METRICS,
                                                    "model": "extra_trees"}).identity == from_csv.identity


def test_config_string_column_repeats_averaged_and_failed_rows_skipped(tmp_path, mbv3_space, measured):
    configs, metrics = measured
    with open(tmp_path / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Sub-network", "Top-1 Acc (%)", "Latency (ms)", "status"])
        for c, m in zip(configs[:50], metrics[:50]):
            w.writerow([str(c), m["top1"], m["latency"], "ok"])
        w.writerow([str(configs[0]), metrics[0]["top1"] + 2.0, metrics[0]["latency"], "ok"])  # measured twice
        w.writerow([str(configs[60]), "", "", "failed"])
    s = make_evaluator("surrogate", mbv3_space, {"source": str(tmp_path / "runs.csv"), "metrics": METRICS})
    assert s.n_measured == 50
    row = [i for i in range(50) if np.array_equal(s.X[i], mbv3_space.encode(mbv3_space.from_config(configs[0])[None])[0])]
    assert s.Y[row[0], 0] == pytest.approx(metrics[0]["top1"] + 1.0)


def test_exact_metrics_next_to_predicted_ones(tmp_path, measured):
    configs, metrics = measured
    space = get_space("ofa_mbv3")
    path = write_columns(tmp_path / "m.csv", space, configs[:60], metrics[:60])
    fast = {"source": str(path), "metrics": METRICS, "model": "extra_trees"}
    s = make_evaluator("surrogate", space, {**fast, "exact": ["macs", "params"]})
    assert [m.name for m in s.metrics] == ["top1", "latency", "macs", "params"]
    c = configs[7]
    one = s.evaluate_one(c)
    assert one["macs"] == ofa_mbv3.macs(c) / 1e6 and one["params"] == ofa_mbv3.params(c) / 1e6
    batch = dict(s.evaluate(configs[:5]))
    assert batch[0].metrics == pytest.approx(s.evaluate_one(configs[0]))
    plain = make_evaluator("surrogate", space, fast)
    assert plain.identity != s.identity and "macs" not in plain.evaluate_one(c)
    w12 = make_evaluator("surrogate", space, {**fast, "exact": ["macs"], "exact_options": {"width_mult": 1.2}})
    assert w12.evaluate_one(c)["macs"] == ofa_mbv3.macs(c, width_mult=1.2) / 1e6


def test_exact_metrics_of_a_hat_space(tmp_path):
    from supernets.transformer.arch import arch_of

    space = get_space("hat_wmt14_ende")
    genomes = space.sample_unique(np.random.default_rng(1), 30)
    with open(tmp_path / "hat.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "bleu"])
        for i, g in enumerate(genomes):
            w.writerow([str(space.to_config(g)), 20 + i % 7])
    s = make_evaluator("surrogate", space, {"source": str(tmp_path / "hat.csv"), "metrics": {"bleu": "max"},
                                            "exact": ["params"], "model": "extra_trees"})
    c = space.to_config(genomes[0])
    assert s.evaluate_one(c)["params"] == arch_of(space, c, 32768, 512).params() / 1e6


@pytest.mark.parametrize("options, fragment", [
    ({"metrics": {"energy": "min"}}, "no column for metric 'energy'"),
    ({"exact": ["flops"]}, "exact metric 'flops' is not one of ['macs', 'params']"),
    ({"exact": ["top1"]}, "['top1'] are both predicted and exact"),
    ({"exact": ["macs"], "exact_options": {"depth": 3}}, "unknown exact_options ['depth']"),
    ({"config_column": "arch"}, "no column 'arch'"),
    ({"source": "nowhere.csv"}, "no such file"),
])
def test_bad_table_options(tmp_path, mbv3_space, measured, options, fragment):
    configs, metrics = measured
    path = write_columns(tmp_path / "m.csv", mbv3_space, configs[:10], metrics[:10])
    with pytest.raises(ConfigError) as info:
        make_evaluator("surrogate", mbv3_space, {"source": str(path), "metrics": METRICS, **options})
    assert fragment in str(info.value) and "\n" not in str(info.value)
