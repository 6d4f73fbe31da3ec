"""The ``ofa_imagenet`` evaluator against OFA's own code.

``tests/fixtures/ofa_note10_reference.json.gz`` holds 1,200 random subnets in OFA's native
format with the top-1 (a fraction) and Note10 latency (ms) that OFA's tutorial code
computes for them. It was made once by ``tests/fixtures/make_ofa_fixture.py``, a
re-typing of OFA's ``LatencyEstimator``/``LatencyTable`` and ``AccuracyPredictor``
(``construct_maps``, ``spec2feats``, the torch model in float32) that reads OFA's original
``acc_predictor.pth`` and YAML tables. Here the evaluator, reading the packaged numpy
conversion and tables, must agree to 1e-6 ms and 1e-5 percentage points on every subnet
(torch's float32 forward pass and ours in float64 differ by at most ~6e-6 points: one
float32 rounding step of a value near 0.8).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from linas.benchmarks import ofa_imagenet as oi
from linas.errors import ConfigError
from linas.evaluator import evaluators
from linas.spaces import get_space

FIXTURE = Path(__file__).parent / "fixtures" / "ofa_note10_reference.json.gz"


@pytest.fixture(scope="module")
def reference():
    with gzip.open(FIXTURE, "rt") as f:
        return json.load(f)["subnets"]


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_imagenet")


@pytest.fixture(scope="module")
def evaluator(space):
    return evaluators.get("ofa_imagenet")(space)


def test_space_has_46_variables(space):
    assert len(space) == 46
    assert space.variable("resolution").choices == (160, 176, 192, 208, 224)


def test_matches_ofa_tutorial_code(reference, space, evaluator):
    assert len(reference) >= 1000
    configs = [oi.config_from_spec({k: row[k] for k in ("ks", "e", "d", "r")}) for row in reference]
    outcomes = dict(evaluator.evaluate(configs))
    top1 = np.array([outcomes[i].metrics["top1"] for i in range(len(configs))])
    latency = np.array([outcomes[i].metrics["latency"] for i in range(len(configs))])
    expected_top1 = 100 * np.array([row["top1_fraction"] for row in reference])
    expected_latency = np.array([row["latency_ms"] for row in reference])
    print(f"max |error|: latency {np.max(np.abs(latency - expected_latency)):.3g} ms, "
          f"top-1 {np.max(np.abs(top1 - expected_top1)):.3g} points")
    assert np.max(np.abs(latency - expected_latency)) < 1e-6
    assert np.max(np.abs(top1 - expected_top1)) < 1e-5
    # one at a time gives the same numbers as the batch
    for i in (0, 1, 2):
        one = evaluator.evaluate_one(configs[i])
        assert one["top1"] == top1[i]  # to the bit (tests/test_vectorized.py: all of them)
        assert one["latency"] == latency[i]
    # the fixture spans the landscape: all depths, resolutions and a real spread
    assert {row["r"][0] for row in reference} == {160, 176, 192, 208, 224}
    assert expected_latency.max() - expected_latency.min() > 20


def test_macs_of_the_largest_and_smallest_subnets(space, evaluator):
    largest = {v.name: max(v.choices) for v in space.variables}
    smallest = {v.name: min(v.choices) for v in space.variables}
    big, small = evaluator.evaluate_one(largest), evaluator.evaluate_one(smallest)
    assert big["macs"] > 3 * small["macs"]
    assert big["latency"] > small["latency"] and big["top1"] > small["top1"]
    # MACs scale with the square of the resolution except for the 1x1 head layers
    at160 = evaluator.evaluate_one({**largest, "resolution": 160})
    ratio = (big["macs"] - at160["macs"]) / big["macs"]
    assert 0.4 < ratio < 1 - (160 / 224) ** 2 + 0.01


def test_native_spec_conversion(space):
    spec = {"ks": [7] * 20, "e": [6] * 20, "d": [2, 3, 4, 2, 3], "r": [192]}
    config = oi.config_from_spec(spec)
    full = space.to_config(space.from_config(config))
    assert full["ks_2"] == 3 and full["ks_6"] == 7 and full["resolution"] == 192
    assert oi.ofa_spec(full)["d"] == spec["d"]
    assert oi.config_from_spec({**spec, "r": 192}) == config
    with pytest.raises(ConfigError, match="'ks' must be a list of 20"):
        oi.config_from_spec({**spec, "ks": [3] * 19})
    assert oi.config_from_spec({"wid": None, **spec}) == config  # as OFA and DyNAS-T write it
    with pytest.raises(ConfigError, match="'wid' is 1.2; only a fixed-width supernet"):
        oi.config_from_spec({**spec, "wid": 1.2})


def test_missing_table_key_is_one_line(tmp_path, space):
    src = oi.table_dir("note10")
    for r in (160, 176, 192, 208, 224):
        text = (src / f"{r}_lookup_table.yaml").read_text()
        if r == 192:
            text = text.replace("Conv_2-input:", "Conv_9-input:")
        (tmp_path / f"{r}_lookup_table.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"192_lookup_table.yaml has no entry 'Conv_2-input:1x1x1152"):
        evaluators.get("ofa_imagenet")(space, device=str(tmp_path))
    with pytest.raises(ConfigError, match="neither a packaged table"):
        evaluators.get("ofa_imagenet")(space, device="pixel9")


def test_other_spaces_are_refused():
    with pytest.raises(ConfigError, match="ofa_imagenet"):
        evaluators.get("ofa_imagenet")(get_space("ofa_mbv3"))
