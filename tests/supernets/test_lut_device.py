"""The ``device`` option of ``linas build-lut`` for both supernets: parsing, errors, and the device in ``meta``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import supernets.mobilenetv3.latency as mbv3_latency
import supernets.transformer  # noqa: F401 - registers hat_tiny
import supernets.transformer.latency as hat_latency
from linas.config_io import parse
from linas.errors import ConfigError
from linas.extensions import lut_builders
from linas.spaces.hat_transformer import hat_space

pytestmark = pytest.mark.usefixtures("one_thread")

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _mbv3(tmp_path, **extra):
    """A digits-sized table: width 0.25, 10 classes, 16x16 input, one timed run per layer."""
    return {"supernet": "ofa_mbv3", "width_mult": 0.25, "n_classes": 10, "resolutions": [16], "warmup": 0,
            "repeats": 1, "output": str(tmp_path / "mbv3_lut.json"), **extra}


def _hat(tmp_path, **extra):
    """hat_tiny with a 100-word vocabulary, one timed run per block."""
    return {"supernet": "hat", "space": "hat_tiny", "vocab_size": 100, "qkv_dim": 32, "warmup": 0, "repeats": 1,
            "output": str(tmp_path / "hat_lut.json"), **extra}


SETTINGS = [pytest.param(mbv3_latency.LutSettings, _mbv3, id="mbv3"),
            pytest.param(hat_latency.LutConfig, _hat, id="hat")]
BUILDERS = [pytest.param("ofa_mbv3", _mbv3, id="mbv3"), pytest.param("hat", _hat, id="hat")]


def _micro_space():
    """One width, FFN and head count: a handful of blocks, timed in well under a second."""
    return hat_space("lut_micro", embed_dims=(16,), ffn_dims=(16,), heads=(1,), encoder_layers=1,
                     decoder_layers=(1,))


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize("model, settings", SETTINGS)
def test_device_defaults_to_cpu_and_threads_to_one(model, settings, tmp_path):
    s = parse(model, settings(tmp_path))
    assert s.device == "cpu" and s.threads == 1


@pytest.mark.parametrize("model, settings", SETTINGS)
@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_device_is_parsed_as_written(model, settings, device, tmp_path):
    assert parse(model, settings(tmp_path, device=device)).device == device


@pytest.mark.parametrize("model, settings", SETTINGS)
def test_threads_may_be_null_but_not_zero(model, settings, tmp_path):
    assert parse(model, settings(tmp_path, threads=None)).threads is None
    assert parse(model, settings(tmp_path, threads=4)).threads == 4
    with pytest.raises(ConfigError, match=r"^lut.yaml: threads: "):
        parse(model, settings(tmp_path, threads=0), "lut.yaml")


@pytest.mark.parametrize("name, settings", BUILDERS)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_one_line_error_naming_the_config(name, settings, device, tmp_path, monkeypatch):
    _no_gpu(monkeypatch)
    with pytest.raises(ConfigError, match=f"^lut.yaml: device '{device}' needs a CUDA GPU") as err:
        lut_builders.get(name)(settings(tmp_path, device=device), Path("lut.yaml"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "mbv3_lut.json").exists() and not (tmp_path / "hat_lut.json").exists()


@pytest.mark.parametrize("name, settings", BUILDERS)
@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "mps", ""])
def test_unknown_devices_are_config_errors(name, settings, device, tmp_path):
    with pytest.raises(ConfigError, match="^lut.yaml: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        lut_builders.get(name)(settings(tmp_path, device=device), Path("lut.yaml"))


# ---------------------------------------------------------------------- building on the CPU
def test_mbv3_table_built_on_cpu_names_the_cpu(tmp_path, monkeypatch):
    _no_gpu(monkeypatch)  # auto: the CPU
    path = lut_builders.get("ofa_mbv3")(_mbv3(tmp_path, device="auto", threads=None), tmp_path / "lut.yaml")
    table = mbv3_latency.LatencyTable.load(path)
    assert table.meta["device"] == mbv3_latency.device_name() and table.meta["device"].startswith("cpu:")
    assert table.meta["threads"] is None
    assert table.entries and all(v > 0 for v in table.entries.values())


def test_hat_table_built_on_cpu_names_the_cpu(tmp_path):
    path = lut_builders.get("hat")(_hat(tmp_path), tmp_path / "lut.yaml")
    table = hat_latency.LatencyTable.load(path)
    assert table.meta["device"] == "cpu" and table.meta["threads"] == 1
    assert table.entries and all(v > 0 for v in table.entries.values())
    assert json.loads(path.read_text())["meta"]["space"] == "hat_tiny"


def test_hat_threads_null_keeps_torchs_thread_count(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hat_latency.torch, "set_num_threads", calls.append)
    monkeypatch.setattr(hat_latency, "build_table", lambda *a, **k: hat_latency.LatencyTable({}, {"device": "cpu"}))
    lut_builders.get("hat")(_hat(tmp_path, threads=None), tmp_path / "lut.yaml")
    assert calls == []
    lut_builders.get("hat")(_hat(tmp_path, threads=2), tmp_path / "lut.yaml")
    assert calls == [2]


@pytest.mark.parametrize("name, settings", BUILDERS)
def test_output_under_home_is_written_where_evaluators_read_it(name, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(hat_latency, "build_table", lambda *a, **k: hat_latency.LatencyTable({}, {"device": "cpu"}))
    path = lut_builders.get(name)(settings(tmp_path, output="~/tables/lut.json"), tmp_path / "lut.yaml")
    assert path == tmp_path / "tables" / "lut.json" and path.is_file()
    table = {"ofa_mbv3": mbv3_latency, "hat": hat_latency}[name].LatencyTable.load("~/tables/lut.json")
    assert table.meta["device"].startswith("cpu")


def test_cpu_tables_are_timed_without_cuda_synchronization(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    hat_latency.build_table(_micro_space(), 50, 16, warmup=0, repeats=1)
    mbv3_latency.LatencyTable.build(0.25, 10, [16], warmup=0, repeats=1, progress=False)
    assert calls == []


# ---------------------------------------------------------------------- building on a GPU
@needs_gpu
def test_hat_table_built_on_cuda_names_the_gpu(tmp_path):
    path = lut_builders.get("hat")(_hat(tmp_path, device="cuda", threads=None, repeats=3), tmp_path / "lut.yaml")
    table = hat_latency.LatencyTable.load(path)
    assert table.meta["device"] == f"cuda:{torch.cuda.get_device_name(0)}"
    cpu = hat_latency.build_table(_micro_space(), 100, 32, warmup=0, repeats=1)
    gpu = hat_latency.build_table(_micro_space(), 100, 32, warmup=1, repeats=3, device="cuda")
    assert gpu.meta["device"].startswith("cuda:") and set(gpu.entries) == set(cpu.entries)
    assert all(v > 0 for v in table.entries.values()) and all(v > 0 for v in gpu.entries.values())


@needs_gpu
def test_mbv3_table_built_on_cuda_names_the_gpu(tmp_path):
    path = lut_builders.get("ofa_mbv3")(_mbv3(tmp_path, device="cuda:0", threads=None, warmup=1, repeats=3),
                                        tmp_path / "lut.yaml")
    table = mbv3_latency.LatencyTable.load(path)
    assert table.meta["device"] == f"cuda:{torch.cuda.get_device_name(0)}"
    cpu = mbv3_latency.LatencyTable.build(0.25, 10, [16], warmup=0, repeats=1, progress=False)
    assert set(table.entries) == set(cpu.entries) and all(v > 0 for v in table.entries.values())
