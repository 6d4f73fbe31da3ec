"""Latency of subnets: measured, and predicted from a per-block lookup table.

*Measured*: warm-up runs, then ``repeats`` timed runs of the static subnet at a fixed
thread count, on the device its weights are on (on a GPU every timed run starts and ends
with ``torch.cuda.synchronize()``); the minimum (least disturbed by other work) and the
median are reported.

*Lookup table* (OFA's approach): every distinct layer shape the search space can produce
(:meth:`~linas.spaces.ofa_mbv3.LayerShape.lut_key`) is timed once on one device (the CPU
unless the config's ``device`` names a GPU); a subnet's latency is the sum over its layers.
``linas build-lut CONFIG.yaml`` builds one; its ``meta`` names the device it was built on.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from linas.config_io import StrictModel, parse
from linas.errors import ConfigError, LinasError
from linas.extensions import lut_builders
from linas.spaces.ofa_mbv3 import EXPANDS, KERNELS, MAX_DEPTH, N_STAGES, LayerShape, layer_shapes
from supernets.devices import resolve_device

from .arch import BlockSpec, max_config, subnet_config
from .layers import ConvBNAct, MBConv, ResidualBlock


class threads:
    """Context manager fixing torch's intra-op thread count, restoring it afterwards."""

    def __init__(self, n: int | None) -> None:
        self.n, self.saved = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.saved)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(model: nn.Module, resolution: int, batch_size: int = 1, warmup: int = 10, repeats: int = 30,
                    n_threads: int | None = 1) -> dict[str, float]:
    """Time of one forward pass in ms over ``repeats`` runs after ``warmup`` runs, on ``model``'s device.

    Returns the wall-clock ``min_ms`` and ``median_ms``, and ``cpu_min_ms``, the least
    CPU time of the calling thread (with one thread it is immune to the process being
    descheduled, which makes it the steadier number on a shared machine). On a GPU the
    timed region is fenced by ``torch.cuda.synchronize()``, so it holds the kernels' run.
    """
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch_size, 3, resolution, resolution).to(device)
    wall, cpu = [], []
    with threads(n_threads):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            _sync(device)
            start, start_cpu = time.perf_counter(), time.thread_time()
            model(x)
            _sync(device)
            cpu.append((time.thread_time() - start_cpu) * 1e3)
            wall.append((time.perf_counter() - start) * 1e3)
    return {"min_ms": min(wall), "median_ms": statistics.median(wall), "cpu_min_ms": min(cpu)}


def layer_module(layer: LayerShape) -> nn.Module:
    """A static module with the shape of one layer of a subnet (random weights)."""
    if layer.kind == "mbconv":
        spec = BlockSpec(layer.name, layer.in_channels, layer.mid_channels, layer.out_channels, layer.kernel,
                         layer.stride, layer.act, layer.se)
        return ResidualBlock(MBConv(spec), spec.residual)
    if layer.kind == "conv":
        return ConvBNAct(layer.in_channels, layer.out_channels, layer.kernel, layer.stride, layer.act,
                         use_bn=layer.name != "feature_mix_layer")
    return nn.Linear(layer.in_channels, layer.out_channels)


def _layer_input(layer: LayerShape, batch_size: int) -> torch.Tensor:
    if layer.kind == "linear":
        return torch.randn(batch_size, layer.in_channels)
    return torch.randn(batch_size, layer.in_channels, layer.in_size, layer.in_size)


def all_layer_shapes(width_mult: float, resolution: int, n_classes: int) -> list[LayerShape]:
    """Every distinct layer shape of the space at one resolution (about 95 for OFA's space)."""
    seen: dict[str, LayerShape] = {}
    for k in KERNELS:
        for e in EXPANDS:
            # Depth 4 everywhere reaches every block position; each position's shape
            # depends only on (stage, first block or not, kernel, expand).
            config = {**max_config(), **{f"ks_{i}": k for i in range(N_STAGES * MAX_DEPTH)},
                      **{f"e_{i}": e for i in range(N_STAGES * MAX_DEPTH)}}
            for layer in layer_shapes(config, width_mult, resolution, n_classes):
                seen.setdefault(layer.lut_key(), layer)
    return list(seen.values())


class LatencyTable:
    """Per-layer latencies (ms) measured on one device; a subnet's latency is their sum.

    Example::

        table = LatencyTable.load("results/mbv3/lut_digits.json")
        table.predict(config)   # ms
    """

    def __init__(self, entries: Mapping[str, float], meta: Mapping[str, Any]) -> None:
        self.entries = dict(entries)
        self.meta = dict(meta)

    @classmethod
    def build(cls, width_mult: float, n_classes: int, resolutions: list[int], batch_size: int = 1,
              warmup: int = 5, repeats: int = 20, n_threads: int | None = 1, progress: bool = True,
              device: str | torch.device = "cpu") -> LatencyTable:
        """Time every layer shape of the space at ``resolutions`` on ``device`` (default the CPU).

        Each layer and its input are created on ``device``; on a GPU every timed run is
        fenced by ``torch.cuda.synchronize()``. ``n_threads`` is torch's CPU thread count
        (``None``: torch's default). ``meta["device"]`` names the CPU, or ``cuda:`` and the GPU.
        """
        device = torch.device(device)
        layers = [layer for r in resolutions for layer in all_layer_shapes(width_mult, r, n_classes)]
        entries = {}
        iterator = layers
        if progress:
            from tqdm import tqdm

            iterator = tqdm(layers, desc="latency table", unit="layer", mininterval=5)
        torch.manual_seed(0)
        for layer in iterator:
            module = layer_module(layer).eval().to(device)
            x = _layer_input(layer, batch_size).to(device)
            times = []
            with threads(n_threads), torch.inference_mode():
                for _ in range(warmup):
                    module(x)
                for _ in range(repeats):
                    _sync(device)
                    start = time.perf_counter()
                    module(x)
                    _sync(device)
                    times.append((time.perf_counter() - start) * 1e3)
            entries[layer.lut_key()] = min(times)
        meta = {"width_mult": width_mult, "n_classes": n_classes, "resolutions": list(resolutions),
                "batch_size": batch_size, "threads": n_threads, "repeats": repeats, "statistic": "min",
                "device": device_name(device), "torch": torch.__version__}
        return cls(entries, meta)

    def predict(self, config: Mapping[str, Any], resolution: int | None = None) -> float:
        """Summed latency (ms) of the subnet's layers."""
        config = subnet_config(config)
        r = int(resolution or config.get("resolution") or self.meta["resolutions"][0])
        total = 0.0
        for layer in layer_shapes(config, self.meta["width_mult"], r, self.meta["n_classes"]):
            key = layer.lut_key()
            if key not in self.entries:
                raise ConfigError(f"latency table has no entry for {key} (built for resolutions "
                                  f"{self.meta['resolutions']}, width {self.meta['width_mult']}); rebuild it")
            total += self.entries[key]
        return total

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": self.meta, "entries": self.entries}, indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: no such latency table (build one with 'linas build-lut CONFIG.yaml')")
        try:
            data = json.loads(p.read_text())
            return cls(data["entries"], data["meta"])
        except (ValueError, KeyError) as exc:
            raise LinasError(f"{p}: not a latency table ({exc})") from None


def device_name(device: torch.device | None = None) -> str:
    """A short description of the CPU this runs on, or of the GPU ``device`` (part of an evaluator's identity)."""
    if device is not None and device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu:{name}"


class LutSettings(StrictModel):
    """A ``linas build-lut`` config for the OFA MobileNetV3 supernet.

    ``device`` (default ``cpu``; or ``auto``, ``cuda``, ``cuda:N``) is where the layers are
    timed; ``threads`` is torch's CPU thread count (``null``: torch's default).
    """

    supernet: Literal["ofa_mbv3"]
    width_mult: float = 1.0
    n_classes: int = 1000
    resolutions: list[int] = [224]
    batch_size: int = 1
    threads: int | None = Field(1, gt=0)
    device: str = "cpu"
    warmup: int = 5
    repeats: int = 20
    output: str


@lut_builders.register("ofa_mbv3")
def build_lut_from_settings(settings: dict[str, Any], config_path: Path) -> Path:
    """Entry point of ``linas build-lut CONFIG.yaml``; writes the table to ``output``.

    The layers are timed on the config's ``device`` (default ``cpu``; ``auto`` is a GPU when
    torch sees one; a GPU asked for where there is none is a :class:`ConfigError`), and the
    table's ``meta["device"]`` names it, so a table built on a GPU is told from a CPU one.

    Example config::

        supernet: ofa_mbv3
        width_mult: 0.5
        n_classes: 200
        resolutions: [32]
        device: cuda
        threads: null
        output: results/tiny_imagenet_mbv3/lut_gpu.json
    """
    s = parse(LutSettings, settings, where=str(config_path))
    device = resolve_device(s.device, str(config_path))
    table = LatencyTable.build(s.width_mult, s.n_classes, s.resolutions, s.batch_size, s.warmup, s.repeats,
                               s.threads, device=device)
    path = table.save(s.output)
    print(f"latency table: {len(table.entries)} layers on {table.meta['device']} -> {path}")
    return path


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two paired sequences."""
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)
