"""The ``ofa_mbv3_supernet`` evaluator: real top-1 of subnets of a trained supernet.

The supernet, the calibration images and the validation images are loaded once, when
the evaluator is built (with ``data: {stream: true}`` only those images are decoded, not
the whole split); each evaluation then extracts the subnet, recalibrates its BN
statistics, measures top-1 and reads its latency from the lookup table (or measures it).

``device`` (default ``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; or ``cpu``,
``cuda``, ``cuda:N``) is where the supernet, BN recalibration, validation and measured
latency run; a GPU run has its own identity, so its measurements never mix with CPU ones.
``threads`` is torch's CPU thread count. At fidelity ``f < 1`` top-1 is measured on the
first ``round(f * n)`` of the ``n`` validation images (BN recalibration is unchanged).

Experiment config::

    evaluator:
      name: ofa_mbv3_supernet
      options:
        checkpoint: results/mbv3/digits/supernet.pt
        data: {kind: digits, load_size: 32, flip: false}
        resolution: 32
        lut: results/mbv3/digits/lut.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import model_validator

from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.registry import Options
from linas.space import SearchSpace
from supernets.devices import resolve_device

from .arch import subnet_config
from .checkpoint import file_digest, load_supernet
from .data import DataSettings, load_split
from .evaluation import recalibrate_bn, top1
from .imagesets import ImageSet
from .latency import LatencyTable, device_name, measure_latency, threads


class SupernetEvaluatorOptions(Options):
    """Options of the ``ofa_mbv3_supernet`` evaluator."""

    checkpoint: str
    data: DataSettings
    resolution: int = 224
    calib_images: int = 2000
    calib_batch: int = 200
    calib_seed: int = 0
    val_images: int | None = None
    val_seed: int = 0
    batch_size: int = 200
    latency: Literal["lut", "measured"] = "lut"
    lut: str | None = None
    latency_batch: int = 1
    latency_threads: int = 1
    latency_repeats: int = 30
    threads: int | None = None
    device: str = "auto"

    @model_validator(mode="after")
    def _lut_named(self) -> SupernetEvaluatorOptions:
        if self.latency == "lut" and not self.lut:
            raise ValueError("latency 'lut' needs 'lut: PATH' (build one with 'linas build-lut'), "
                             "or set latency: measured")
        return self


@evaluators.register("ofa_mbv3_supernet")
class SupernetEvaluator(Evaluator):
    """Top-1 (BN recalibrated), latency, MACs and parameters of OFA-MobileNetV3 subnets."""

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"),
               Objective("macs", "min", "M"), Objective("params", "min", "M"))

    Options = SupernetEvaluatorOptions  # validated by evaluators.build before __init__
    #: Fidelity f: top-1 over the first round(f * n) of the n validation images (at least one).
    supports_fidelity = True

    def __init__(self, space: SearchSpace, **options: Any) -> None:
        super().__init__(space)
        self.options = SupernetEvaluatorOptions(**options)
        o = self.options
        self.device = resolve_device(o.device, "evaluator ofa_mbv3_supernet")
        self.supernet = load_supernet(o.checkpoint).to(self.device).eval()
        self._checkpoint_digest = file_digest(o.checkpoint)
        self.table = LatencyTable.load(o.lut) if o.latency == "lut" else None
        # Decoded once and reused by every evaluation (with stream: true, only these images are read).
        self.calib = load_split(o.data, "train").subset(o.calib_images, o.calib_seed).materialize()
        self.val = load_split(o.data, "val").subset(o.val_images, o.val_seed).materialize()
        if self.val.n_classes != self.supernet.n_classes:
            raise ConfigError(f"evaluator ofa_mbv3_supernet: the data has {self.val.n_classes} classes, "
                              f"the supernet {self.supernet.n_classes}")

    @property
    def identity(self) -> str:
        o = self.options
        data = json.dumps(o.data.identity(), sort_keys=True)
        latency = (f"lut={file_digest(o.lut)}" if o.latency == "lut" else
                   f"measured:{device_name(self.device)}:b{o.latency_batch}:t{o.latency_threads}")
        device = "" if self.device.type == "cpu" else f":device={device_name(self.device)}"
        return (f"ofa_mbv3_supernet:ckpt={self._checkpoint_digest}:data={data}:r={o.resolution}"
                f":calib={o.calib_images}/{o.calib_batch}/{o.calib_seed}:val={o.val_images}/{o.val_seed}:{latency}"
                f"{device}")

    def validation_images(self, fidelity: float = 1.0) -> ImageSet:
        """The validation images of an evaluation at ``fidelity``: the first ``round(fidelity * n)``."""
        if fidelity >= 1:
            return self.val
        return self.val.head(max(1, round(fidelity * len(self.val))))

    def evaluate_one(self, config: Mapping[str, Any], fidelity: float = 1.0) -> dict[str, float]:
        o = self.options
        config = subnet_config(config)
        r = int(config.get("resolution", o.resolution))
        net = self.supernet
        net.set_active_subnet(config)
        with threads(o.threads), torch.no_grad():
            subnet = net.get_active_subnet().to(self.device)
            recalibrate_bn(subnet, (x for x, _ in self.calib.eval_batches(r, o.calib_batch)))
            accuracy = top1(subnet, self.validation_images(fidelity), r, o.batch_size)
        if self.table is not None:
            latency = self.table.predict(config, r)
        else:
            latency = measure_latency(subnet, r, o.latency_batch, repeats=o.latency_repeats,
                                      n_threads=o.latency_threads)["min_ms"]
        return {"top1": accuracy, "latency": latency, "macs": net.active_macs(r) / 1e6,
                "params": net.active_params() / 1e6}
