"""The hat_supernet evaluator and the latency measurement and proxy."""

from __future__ import annotations

import numpy as np
import pytest

import supernets.transformer  # noqa: F401 - registers hat_tiny
from linas.errors import ConfigError, LinasError
from linas.evaluator import make_evaluator
from linas.extensions import lut_builders
from linas.spaces import get_space
from supernets.transformer.latency import LatencyTable, measure_latency, trimmed_mean
from supernets.transformer.model import SuperTransformer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def setup(hat_evaluator_options):
    return dict(hat_evaluator_options)


def configs(space, n, seed=0):
    return [space.to_config(g) for g in space.sample(np.random.default_rng(seed), n)]


def test_evaluator_returns_bleu_latency_macs_and_params(setup, space):
    evaluator = make_evaluator("hat_supernet", space, setup)
    outcome = evaluator.guarded(configs(space, 1)[0])
    assert outcome.ok, outcome.error
    assert set(outcome.metrics) == {"bleu", "latency", "macs", "params"}
    assert 0 <= outcome.metrics["bleu"] <= 100 and outcome.metrics["latency"] > 0


def test_evaluator_reports_an_invalid_config_as_a_failed_outcome(setup, space):
    evaluator = make_evaluator("hat_supernet", space, setup)
    outcome = evaluator.guarded({**configs(space, 1)[0], "encoder_embed_dim": 999})
    assert not outcome.ok and "encoder_embed_dim=999" in outcome.error


def test_evaluator_identity_changes_with_what_changes_measurements(setup, space):
    base = make_evaluator("hat_supernet", space, setup).identity
    assert make_evaluator("hat_supernet", space, setup).identity == base
    assert make_evaluator("hat_supernet", space, {**setup, "beam": 2}).identity != base
    assert make_evaluator("hat_supernet", space, {**setup, "subset": 2}).identity != base
    assert make_evaluator("hat_supernet", space, {**setup, "latency": "measured"}).identity != base


def test_loss_evaluator_measures_validation_loss(setup, space):
    evaluator = make_evaluator("hat_supernet_loss", space, setup)
    metrics = evaluator.evaluate_one(configs(space, 1)[0])
    assert metrics["valid_loss"] > 0 and set(metrics) == {"valid_loss", "latency", "macs", "params"}


def test_missing_checkpoint_and_wrong_space_are_clear_errors(setup, space, tmp_path):
    with pytest.raises(LinasError, match="no such checkpoint"):
        make_evaluator("hat_supernet", space, {**setup, "checkpoint": str(tmp_path)})
    with pytest.raises(ConfigError, match="trained on space 'hat_tiny'"):
        make_evaluator("hat_supernet", get_space("hat_cpu"), setup)


def test_bad_corpus_option_is_a_one_line_error_before_the_checkpoint_is_read(space, tmp_path):
    with pytest.raises(ConfigError, match="hat_supernet': corpus: give either 'hub' or both"):
        make_evaluator("hat_supernet", space, {"checkpoint": str(tmp_path), "corpus": {"src": "a.en"}})


def test_non_positive_subset_is_rejected(setup, space):
    with pytest.raises(ConfigError, match="hat_supernet': subset: Input should be greater than 0"):
        make_evaluator("hat_supernet", space, {**setup, "subset": 0})


def test_unknown_latency_mode_is_rejected(setup, space):
    with pytest.raises(ConfigError, match="hat_supernet': latency: Input should be 'lut', 'measured' or 'device'"):
        make_evaluator("hat_supernet", space, {**setup, "latency": "guess"})


def test_device_latency_comes_from_hats_measurements_of_that_device(setup, space):
    from linas.benchmarks.hat_latency import DeviceLatency

    evaluator = make_evaluator("hat_supernet_loss", space, {**setup, "latency": "device", "latency_device": "xeon"})
    config = configs(space, 1)[0]
    outcome = evaluator.guarded(config)
    assert outcome.ok, outcome.error
    expected = DeviceLatency("xeon")
    assert outcome.metrics["latency"] == pytest.approx(expected(config))
    assert expected.identity in evaluator.identity
    with pytest.raises(ConfigError, match="latency_device: Input should be 'raspberrypi', 'xeon' or 'titanxp'"):
        make_evaluator("hat_supernet", space, {**setup, "latency": "device", "latency_device": "phone"})


def test_latency_table_covers_every_subnet_and_is_deterministic(setup, space):
    table = LatencyTable.load(setup["lut"])
    values = [table.predict_config(space, c) for c in configs(space, 20)]
    assert all(v > 0 for v in values)
    assert values == [table.predict_config(space, c) for c in configs(space, 20)]


def test_latency_table_for_another_space_is_a_clear_error(setup):
    table = LatencyTable.load(setup["lut"])
    cpu = get_space("hat_cpu")
    with pytest.raises(LinasError, match="no entry"):
        table.predict(SuperTransformer(cpu, 100, 32).arch)


def test_measured_latency_grows_with_decoder_depth():
    """One decoder layer against six (hat_cpu widths): a gap no load on a shared machine hides."""
    space = get_space("hat_cpu")
    net = SuperTransformer(space, 100, 32, dropout=0.0).eval()
    largest = space.to_config(space.from_config({v.name: max(v.choices) for v in space.variables}))
    times = []
    for depth in (1, 6):
        net.set_active_subnet({**largest, "decoder_layer_num": depth})
        # The minimum: other work on a shared machine only ever adds time.
        times.append(measure_latency(net.get_active_subnet(), warmup=1, repeats=5, statistic="min"))
    assert times[1] > 2 * times[0], times


def test_trimmed_mean_ignores_outliers():
    assert trimmed_mean([1.0, 1.0, 1.0, 1.0, 100.0, 0.0, 1.0, 1.0, 1.0, 1.0], trim=0.1) == 1.0


def test_lut_builder_is_registered_for_hat():
    assert lut_builders.get("hat").__name__ == "build_lut"
