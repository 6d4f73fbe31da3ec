"""The ``device`` option of the supernet evaluators: resolution, errors, identities, and GPU runs where there is one."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import supernets.mobilenetv3.latency as mbv3_latency
import supernets.transformer  # noqa: F401 - registers hat_tiny
import supernets.transformer.latency as hat_latency
from supernets.devices import resolve_device
from linas.errors import ConfigError
from linas.evaluator import make_evaluator
from linas.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
RESOLVERS = [pytest.param(resolve_device, id="shared")]  # one function for every device option
DIGITS = {"kind": "digits", "load_size": 16, "flip": False, "pad_crop": 1}


def _gpus(monkeypatch, n: int) -> None:
    """Make torch report ``n`` GPUs (nothing is run on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


# ---------------------------------------------------------------------- resolution
@pytest.mark.parametrize("resolve", RESOLVERS)
def test_auto_is_cpu_without_a_gpu_and_cuda_with_one(resolve, monkeypatch):
    _gpus(monkeypatch, 0)
    assert resolve("auto", "ev") == torch.device("cpu")
    assert resolve("cpu", "ev") == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert resolve("auto", "ev").type == "cuda"
    assert resolve("cuda", "ev").type == "cuda"
    assert resolve("cuda:1", "ev") == torch.device("cuda", 1)
    assert resolve("cpu", "ev") == torch.device("cpu")


@pytest.mark.parametrize("resolve", RESOLVERS)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_one_line_error_naming_the_option(resolve, device, monkeypatch):
    _gpus(monkeypatch, 0)
    with pytest.raises(ConfigError, match=f"^evaluator x: device '{device}' needs a CUDA GPU") as err:
        resolve(device, "evaluator x")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("resolve", RESOLVERS)
def test_a_gpu_index_beyond_the_gpus_is_rejected(resolve, monkeypatch):
    _gpus(monkeypatch, 1)
    with pytest.raises(ConfigError, match="device 'cuda:1' does not exist"):
        resolve("cuda:1", "ev")


@pytest.mark.parametrize("resolve", RESOLVERS)
@pytest.mark.parametrize("device", ["gpu0", "gpu", "CUDA", "cuda:", "cuda:x", "mps", "", "cpu:0"])
def test_unknown_device_strings_are_rejected(resolve, device):
    with pytest.raises(ConfigError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve(device, "ev")


def test_device_names_in_identities(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    assert hat_latency.device_label(torch.device("cpu")) == "cpu"
    assert hat_latency.device_label(torch.device("cuda", 0)) == "cuda:Fake GPU"
    assert mbv3_latency.device_name(torch.device("cuda", 0)) == "cuda:Fake GPU"
    assert mbv3_latency.device_name(torch.device("cpu")) == mbv3_latency.device_name()
    assert mbv3_latency.device_name().startswith("cpu:")


def test_timed_runs_synchronize_on_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    hat_latency.time_samples(lambda: None, warmup=1, repeats=3, device=torch.device("cpu"))
    hat_latency.time_samples(lambda: None, warmup=1, repeats=3)
    assert calls == []
    hat_latency.time_samples(lambda: None, warmup=1, repeats=3, device=torch.device("cuda", 0))
    assert calls == [torch.device("cuda", 0)] * 6  # before and after each timed run


# ---------------------------------------------------------------------- hat_supernet
@pytest.fixture
def hat(hat_evaluator_options):
    return dict(hat_evaluator_options)


def _config(space, seed=0):
    return space.to_config(space.sample(np.random.default_rng(seed), 1)[0])


@pytest.mark.parametrize("name", ["hat_supernet", "hat_supernet_loss"])
def test_hat_auto_resolves_to_cpu_with_the_identity_of_a_cpu_run(hat, space, name, monkeypatch):
    _gpus(monkeypatch, 0)
    default = make_evaluator(name, space, hat)
    auto = make_evaluator(name, space, {**hat, "device": "auto"})
    cpu = make_evaluator(name, space, {**hat, "device": "cpu"})
    assert default.device == auto.device == cpu.device == torch.device("cpu")
    assert default.identity == auto.identity == cpu.identity
    # The CPU identity as it has always been written (evaluation caches and archives key on it).
    assert re.fullmatch(rf"{name}:ckpt={default.meta['sha256']}:data=[0-9a-f]{{12}}:beam=4:lenpen=0.6"
                        r":latency=lut-[0-9a-f]{12}:device=cpu:threads=1", default.identity), default.identity


@pytest.mark.parametrize("name", ["hat_supernet", "hat_supernet_loss"])
def test_hat_cuda_without_a_gpu_is_a_config_error(hat, space, name, monkeypatch):
    _gpus(monkeypatch, 0)
    with pytest.raises(ConfigError, match="^hat_supernet: device 'cuda' needs a CUDA GPU"):
        make_evaluator(name, space, {**hat, "device": "cuda"})
    with pytest.raises(ConfigError, match="^hat_supernet: device must be"):
        make_evaluator(name, space, {**hat, "device": "gpu0"})


def test_hat_metrics_on_cpu_are_python_floats(hat, space):
    evaluator = make_evaluator("hat_supernet_loss", space, {**hat, "device": "cpu"})
    metrics = evaluator.evaluate_one(_config(space))
    assert set(metrics) == {"valid_loss", "latency", "macs", "params"}
    assert all(type(v) is float for v in metrics.values())


@needs_gpu
@pytest.mark.parametrize("name, quality, tolerance", [("hat_supernet_loss", "valid_loss", {"rel": 1e-4}),
                                                      ("hat_supernet", "bleu", {"abs": 1.0})])
def test_hat_on_cuda_measures_what_cpu_measures(hat, space, name, quality, tolerance):
    cpu = make_evaluator(name, space, {**hat, "device": "cpu"})
    gpu = make_evaluator(name, space, {**hat, "device": "cuda", "latency": "measured"})
    assert gpu.device.type == "cuda" and next(gpu.net.parameters()).is_cuda
    assert ":device=cuda:" in gpu.identity and gpu.identity != cpu.identity
    for seed in range(2):
        config = _config(space, seed)
        a, b = cpu.evaluate_one(config), gpu.evaluate_one(config)
        assert all(type(v) is float for v in b.values())
        # Float rounding differs between the devices; a near-tie in the search may change a word.
        assert b[quality] == pytest.approx(a[quality], **tolerance)
        assert (b["macs"], b["params"]) == (a["macs"], a["params"])
        assert b["latency"] > 0


# ---------------------------------------------------------------------- ofa_mbv3_supernet
@pytest.fixture(scope="module")
def mbv3(tmp_path_factory):
    """An untrained width-0.25 supernet for digits and a stand-in lookup-table file."""
    pytest.importorskip("sklearn")
    from supernets.mobilenetv3 import OFAMobileNetV3
    from supernets.mobilenetv3.checkpoint import save_supernet

    d = tmp_path_factory.mktemp("mbv3_device")
    torch.manual_seed(0)
    save_supernet(d / "supernet.pt", OFAMobileNetV3(n_classes=10, width_mult=0.25, dropout=0.0))
    (d / "lut.json").write_text(json.dumps({"meta": {}, "entries": {}}))
    return {"checkpoint": str(d / "supernet.pt"), "data": DIGITS, "resolution": 16, "calib_images": 64,
            "calib_batch": 32, "val_images": 120, "batch_size": 64, "lut": str(d / "lut.json"), "threads": 1}


def _mbv3_cpu_identity_pattern(options) -> str:
    """The identity as written before ``device`` existed (the data settings' JSON left open)."""
    from supernets.mobilenetv3.checkpoint import file_digest

    latency = (f"lut={file_digest(options['lut'])}" if options.get("latency", "lut") == "lut" else
               f"measured:{mbv3_latency.device_name()}:b1:t1")
    return (rf"ofa_mbv3_supernet:ckpt={file_digest(options['checkpoint'])}:data=\{{.*\}}:r={options['resolution']}"
            rf":calib={options['calib_images']}/{options['calib_batch']}/0:val={options['val_images']}/0:"
            + re.escape(latency))


@pytest.mark.parametrize("latency", ["lut", "measured"])
def test_mbv3_auto_resolves_to_cpu_with_the_identity_of_a_cpu_run(mbv3, latency, monkeypatch):
    _gpus(monkeypatch, 0)
    options = {**mbv3, "latency": latency}
    space = get_space("ofa_mbv3")
    default = make_evaluator("ofa_mbv3_supernet", space, options)
    auto = make_evaluator("ofa_mbv3_supernet", space, {**options, "device": "auto"})
    cpu = make_evaluator("ofa_mbv3_supernet", space, {**options, "device": "cpu"})
    assert default.device == auto.device == cpu.device == torch.device("cpu")
    assert default.identity == auto.identity == cpu.identity
    assert re.fullmatch(_mbv3_cpu_identity_pattern(options), default.identity), default.identity
    assert "device=" not in default.identity


def test_mbv3_identity_names_the_gpu(mbv3, monkeypatch):
    evaluator = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"), {**mbv3, "device": "cpu"})
    cpu = evaluator.identity
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    evaluator.device = torch.device("cuda", 0)  # the identity only; nothing runs
    assert evaluator.identity == cpu + ":device=cuda:Fake GPU"


def test_mbv3_cuda_without_a_gpu_and_bad_devices_are_config_errors(mbv3, monkeypatch):
    _gpus(monkeypatch, 0)
    space = get_space("ofa_mbv3")
    with pytest.raises(ConfigError, match="^evaluator ofa_mbv3_supernet: device 'cuda:0' needs a CUDA GPU"):
        make_evaluator("ofa_mbv3_supernet", space, {**mbv3, "device": "cuda:0"})
    with pytest.raises(ConfigError, match="^evaluator ofa_mbv3_supernet: device must be"):
        make_evaluator("ofa_mbv3_supernet", space, {**mbv3, "device": "gpu0"})


def test_mbv3_metrics_on_cpu_are_python_floats(mbv3):
    from supernets.mobilenetv3 import min_config

    options = {**mbv3, "latency": "measured", "latency_repeats": 2}
    metrics = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"), options).evaluate_one(min_config())
    assert set(metrics) == {"top1", "latency", "macs", "params"}
    assert all(type(v) is float for v in metrics.values())


@needs_gpu
def test_mbv3_on_cuda_measures_what_cpu_measures(mbv3):
    from supernets.mobilenetv3 import max_config, min_config

    space = get_space("ofa_mbv3")
    options = {**mbv3, "latency": "measured", "latency_repeats": 5}
    cpu = make_evaluator("ofa_mbv3_supernet", space, {**options, "device": "cpu"})
    gpu = make_evaluator("ofa_mbv3_supernet", space, {**options, "device": "cuda"})
    assert next(gpu.supernet.parameters()).is_cuda
    assert ":device=cuda:" in gpu.identity and "measured:cuda:" in gpu.identity
    for config in (min_config(), max_config()):
        a, b = cpu.evaluate_one(config), gpu.evaluate_one(config)
        assert all(type(v) is float for v in b.values())
        # BN statistics and logits agree to float rounding; a near-tie may flip one or two of the 120 images.
        assert b["top1"] == pytest.approx(a["top1"], abs=2.5)
        assert (b["macs"], b["params"]) == (a["macs"], a["params"])
        assert b["latency"] > 0
