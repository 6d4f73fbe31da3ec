"""The pure parts of experiments/benchmarks/bench_dynast_linas.py: DyNAS-T's OFA MobileNetV3 vector <-> linas's
config, the CSV the importer reads, and the validation accounting. Skipped without DyNAS-T 1.6.0 (installed, or
its unpacked wheel's folder in DYNAST_PATH); imports no torch."""

from __future__ import annotations

import csv
import importlib.util
import os
import random

import numpy as np
import pytest

from helpers import REPO
from linas.networks import parse_network_text, to_config

SCRIPT = REPO / "experiments" / "benchmarks" / "bench_dynast_linas.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_dynast_linas", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def encoding(bench):
    try:
        encoding, version, _ = bench.load_encoding(os.environ.get("DYNAST_PATH"))
    except bench.BenchError as exc:
        pytest.skip(f"DyNAS-T 1.6.0 not importable: {exc}")
    assert version == "1.6.0"
    return encoding


def test_dynast_vector_is_linas_genome_and_round_trips(bench, encoding, mbv3_space):
    assert encoding.param_count == len(mbv3_space) == 45
    assert list(encoding.param_upperbound) == list(mbv3_space.n_choices - 1)
    for genome in mbv3_space.sample(np.random.default_rng(0), 200):
        config = mbv3_space.to_config(genome)
        vector = bench.to_dynast_vector(config, encoding)
        assert vector == [int(x) for x in genome]  # same variables, order and choice order
        assert bench.to_linas_config(vector, encoding, mbv3_space) == config


def test_dynast_vectors_map_to_canonical_configs(bench, encoding, mbv3_space):
    random.seed(1)  # DyNAS-T samples with the random module
    for _ in range(200):
        vector = encoding.random_sample()
        config = bench.to_linas_config(vector, encoding, mbv3_space)
        canonical = mbv3_space.canonicalize(np.array(vector))[0]
        assert mbv3_space.from_config(config).tolist() == canonical.tolist()
        params = encoding.translate2param(vector)
        for s in range(5):  # blocks the depth uses keep DyNAS-T's kernel and expand ratio
            for j in range(params["d"][s]):
                i = 4 * s + j
                assert (config[f"ks_{i}"], config[f"e_{i}"]) == (params["ks"][i], params["e"][i])
        again = bench.to_dynast_vector(config, encoding)
        assert bench.to_linas_config(again, encoding, mbv3_space) == config


def test_subnets_as_dynast_writes_them_reach_the_importer(bench, encoding, mbv3_space, tmp_path):
    random.seed(2)
    vectors = [encoding.random_sample() for _ in range(5)]
    header = ["Sub-network", "Date", "Model Parameters", "Latency (ms)", "MACs", "Top-1 Acc (%)"]
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for v in vectors:  # as EvaluationInterfaceOFAMobileNetV3.eval_subnet builds the sample
            p = encoding.translate2param(v)
            w.writerow([{"wid": None, "ks": p["ks"], "e": p["e"], "d": p["d"], "r": [224]}, "x", 1, 20.0, 1, 70.0])
    with open(tmp_path / "d.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for v, row in zip(vectors, rows):  # linas's importer reads them as they are, wid: None included
        assert "'wid': None" in row["Sub-network"]
        assert to_config(parse_network_text(row["Sub-network"]), mbv3_space) == \
            bench.to_linas_config(v, encoding, mbv3_space)


def test_accounting_counts_networks_not_vectors(bench, encoding, mbv3_space):
    genome = mbv3_space.sample(np.random.default_rng(3), 1)[0]
    base = bench.to_dynast_vector(mbv3_space.to_config(genome), encoding)
    base[40] = 0  # d_0 = 2: block 3 (ks_3, e_3) is unused
    twin = list(base)
    twin[3] = (twin[3] + 1) % 3  # another DyNAS-T vector, the same network for linas
    distinct = bench.Accounting(mbv3_space, encoding, budget=2, population=2, count_repeats=False)
    distinct.before(base)
    distinct.after()
    distinct.before(twin)  # the same network as base for linas
    distinct.after()
    assert (distinct.calls, len(distinct.seen)) == (2, 1)
    other = list(base)
    other[41] = (other[41] + 1) % 3
    distinct.before(other)
    with pytest.raises(bench._BudgetSpent):
        distinct.after()
    calls = bench.Accounting(mbv3_space, encoding, budget=2, population=2, count_repeats=True)
    calls.before(base)
    calls.after()
    calls.before(twin)
    with pytest.raises(bench._BudgetSpent):  # DyNAS-T's accounting: every validation call counts
        calls.after()
