"""HAT's latency predictor re-implemented: features, training, shipped fits, the evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from linas.benchmarks import hat_latency as hl
from linas.errors import ConfigError
from linas.evaluator import make_evaluator
from linas.networks import to_config
from linas.spaces import get_space

# HAT's searched WMT'14 En-De SubTransformers for the Raspberry Pi (configs/wmt14.en-de/subtransformer/
# HAT_wmt14ende_raspberrypi@{3.5,4.0,5.0,6.0}s_*.yml): decoder layers, their FFN dims, self / ende heads,
# arbitrary attention; encoders: 512-dim, 6 layers with these FFN dims and heads.
HAT_PI = [
    (3500, [1024, 3072, 3072, 2048, 2048, 2048], [4, 8, 4, 4, 4, 8], [3072], [8], [8], [-1]),
    (4000, [3072, 2048, 3072, 2048, 3072, 2048], [8, 8, 8, 4, 8, 8], [1024, 2048], [4, 4], [8, 8], [-1, -1]),
    (5000, [3072, 3072, 3072, 2048, 3072, 3072], [8, 8, 8, 8, 8, 4], [1024, 2048, 3072], [4, 8, 8], [4, 8, 8],
     [-1, 1, -1]),
    (6000, [3072] * 6, [4, 4, 4, 8, 8, 4], [2048, 2048, 3072, 3072], [4, 8, 8, 4], [4, 8, 8, 8], [-1, -1, 1, -1]),
]


def hat_yaml(enc_ffn, enc_heads, dec_ffn, dec_self, dec_ende, arbitrary):
    return {"encoder-embed-dim-subtransformer": 512, "decoder-embed-dim-subtransformer": 512,
            "encoder-layer-num-subtransformer": 6, "decoder-layer-num-subtransformer": len(dec_ffn),
            "encoder-ffn-embed-dim-all-subtransformer": enc_ffn,
            "encoder-self-attention-heads-all-subtransformer": enc_heads,
            "decoder-ffn-embed-dim-all-subtransformer": dec_ffn,
            "decoder-self-attention-heads-all-subtransformer": dec_self,
            "decoder-ende-attention-heads-all-subtransformer": dec_ende,
            "decoder-arbitrary-ende-attn-all-subtransformer": arbitrary}


@pytest.fixture(scope="module")
def space():
    return get_space("hat_wmt14_ende")


def test_features_follow_hats_get_config_features(space):
    # the example config of HAT's latency_predictor.py
    config = to_config(hat_yaml([3072] * 6, [8, 8, 8, 8, 8, 4], [2048, 3072, 3072, 3072, 1024], [4, 8, 8, 4, 4],
                                [4, 8, 8, 4, 4], [-1, 1, 1, 1, 1]), space)
    f = hl.config_features(config)
    np.testing.assert_allclose(f, [512, 6, 3072, 44 / 6, 512, 5, 12288 / 5, 28 / 5, 28 / 5, 9 / 5])
    # decoder layers beyond decoder_layer_num do not count
    assert hl.config_features({**config, "decoder_layer_num": 1})[6:].tolist() == [2048, 4, 4, 1]


def test_the_dataset_is_hats(space):
    x, y = hl.read_dataset("wmt14ende", "raspberrypi")
    assert x.shape == (2000, 10) and y.shape == (2000,)
    assert 2500 < y.min() and y.max() < 13000  # ms, encoder + decoder
    with pytest.raises(ConfigError, match="unknown latency device 'jetson'; known: raspberrypi, xeon, titanxp"):
        hl.read_dataset("wmt14ende", "jetson")
    with pytest.raises(ConfigError, match="HAT measured no latency of 'iwslt14deen' on 'xeon'"):
        hl.read_dataset("iwslt14deen", "xeon")


def test_training_is_deterministic_and_learns():
    x, y = hl.read_dataset("wmt14ende", "xeon")
    a = hl.fit_mlp(x[:1600], y[:1600], 300.0, seed=3, steps=40)
    b = hl.fit_mlp(x[:1600], y[:1600], 300.0, seed=3, steps=40)
    c = hl.fit_mlp(x[:1600], y[:1600], 300.0, seed=4, steps=40)
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights))
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert [w.shape for w in a.weights] == [(10, 400), (400, 400), (400, 400), (400, 400), (400, 1)]
    untrained = hl.fit_mlp(x[:1600], y[:1600], 300.0, seed=3, steps=0)
    err = [np.mean(np.abs(m.predict(x[1600:]) - y[1600:]) / y[1600:]) for m in (untrained, a)]
    assert err[1] < err[0]


@pytest.mark.parametrize("device", ["raspberrypi", "xeon", "titanxp"])
def test_shipped_fits_predict_hats_measurements(device):
    path = hl.shipped_path("wmt14ende", device)
    assert path.is_file()
    model = hl.load_predictor("wmt14ende", device)
    x, y = hl.read_dataset("wmt14ende", device)
    p = model.predict(x)
    assert np.mean(np.abs(p - y) / y) < 0.08
    assert kendalltau(y, p).statistic > 0.8


def test_hats_raspberry_pi_subtransformers(space):
    """HAT's own searched models land near the latency HAT names them by, in order."""
    latency = hl.DeviceLatency("raspberrypi")
    predicted = [latency(to_config(hat_yaml(*row[1:]), space)) for row in HAT_PI]
    for (named, *_), p in zip(HAT_PI, predicted):
        assert abs(p - named) / named < 0.15, (named, p)
    assert predicted == sorted(predicted)


def test_evaluator(space):
    pi = make_evaluator("hat_device_latency", space, {"latency_device": "raspberrypi"})
    gpu = make_evaluator("hat_device_latency", space, {"latency_device": "titanxp"})
    from supernets.transformer.arch import arch_of

    configs = [space.to_config(g) for g in space.sample(np.random.default_rng(0), 20)]
    out = dict(pi.evaluate(configs))
    for i, c in enumerate(configs[:3]):
        one = pi.evaluate_one(c)
        assert one == pytest.approx(out[i].metrics)
        arch = arch_of(space, c, 32768, 512)
        assert one["macs"] == arch.macs() / 1e6 and one["params"] == arch.params() / 1e6
        assert gpu.evaluate_one(c)["latency"] < one["latency"] / 10  # a GPU is faster than a Raspberry Pi
    assert pi.identity != gpu.identity
    with pytest.raises(ConfigError, match="unknown latency device 'pi5'"):
        make_evaluator("hat_device_latency", space, {"latency_device": "pi5"})
    with pytest.raises(ConfigError, match="needs a HAT space"):
        make_evaluator("hat_device_latency", get_space("ofa_mbv3"), {})


def test_unshipped_predictors_are_fitted_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LINAS_CACHE", str(tmp_path))
    monkeypatch.setattr(hl, "TRAIN_STEPS", 5)
    monkeypatch.setattr(hl, "_LOADED", {})
    first = hl.load_predictor("iwslt14deen", "titanxp", seed=7)
    cached = list((tmp_path / "hat_latency").glob("iwslt14deen_titanxp_seed7_*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(hl, "_LOADED", {})
    monkeypatch.setattr(hl, "fit_mlp", lambda *a, **k: pytest.fail("refitted"))
    again = hl.load_predictor("iwslt14deen", "titanxp", seed=7)
    assert all(np.array_equal(p, q) for p, q in zip(first.weights, again.weights))
