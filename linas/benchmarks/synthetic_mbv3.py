"""A synthetic NAS benchmark over the 45-variable OFA MobileNetV3 space.

Both objectives derive from the subnet's real layer shapes (:mod:`linas.spaces.ofa_mbv3`).

**Latency** (ms) models a mobile CPU: each layer costs its multiply-accumulates at the
throughput of its kind, plus a fixed per-layer overhead::

    latency = sum_layers [ macs_pointwise / 20 + macs_depthwise * (1 + 0.15 (k - 3)) / 2
                           + 0.05 + 0.04 * se ]          (MACs in millions)

so depthwise kernels are memory-bound and larger ones cost more than their MACs say.

**Top-1** (%) saturates in a capacity score ``u`` in [0, 1]::

    c     = sum_blocks  w_s * 0.8^j * (0.6 * log(e / 3) / log 2  +  0.4 * g_s * (k - 3) / 4)
    u     = (c - c_min) / (c_max - c_min)
    top1  = 62 + 16 * (1 - exp(-3 u)) / (1 - exp(-3))  +  3 * log2(resolution / 224)  +  noise

with stage weights ``w = (0.6, 0.8, 1.0, 1.2, 1.4)``, kernel gains ``g = (0.3, 0.5, 1.0, 1.0,
0.8)`` and ``j`` the block's position in its stage: later stages and wider expansions
buy more accuracy, early large kernels buy little, and returns diminish. ``noise`` is
Gaussian with standard deviation ``noise`` (percentage points), drawn from a generator
seeded by the config key and ``noise_seed``: the same network always measures the same.

**Fidelity** ``f`` in (0, 1] stands in for validating on a share ``f`` of the images: top-1
gains Gaussian noise of standard deviation ``0.5 * sqrt((1 - f) / f)`` points (1.41 at
1/9, 0.71 at 1/3, none at 1), drawn from a generator seeded by the config key,
``noise_seed`` and ``f``; latency, MACs and parameters do not depend on it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from linas import registry
from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace
from linas.spaces import ofa_mbv3

STAGE_WEIGHTS = (0.6, 0.8, 1.0, 1.2, 1.4)
KERNEL_GAINS = (0.3, 0.5, 1.0, 1.0, 0.8)
POSITION_DECAY = 0.8


def _block_capacity(stage: int, position: int, kernel: int, expand: int) -> float:
    quality = 0.6 * math.log(expand / 3) / math.log(2) + 0.4 * KERNEL_GAINS[stage] * (kernel - 3) / 4
    return STAGE_WEIGHTS[stage] * POSITION_DECAY ** position * quality


def _stage_capacity_range(stage: int) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for depth in ofa_mbv3.DEPTHS:
        per_block = [[_block_capacity(stage, j, k, e) for k in ofa_mbv3.KERNELS for e in ofa_mbv3.EXPANDS]
                     for j in range(depth)]
        lo = min(lo, sum(min(b) for b in per_block))
        hi = max(hi, sum(max(b) for b in per_block))
    return lo, hi


@evaluators.register("synthetic_mbv3")
class SyntheticMobileNetV3(Evaluator):
    """Closed-form top-1 and latency of OFA MobileNetV3 subnets (see the module docstring)."""

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"),
               Objective("macs", "min", "M"), Objective("params", "min", "M"))
    supports_fidelity = True

    class Options(registry.Options):
        noise: float = Field(0.0, ge=0)  # standard deviation of the top-1 noise, in points
        noise_seed: int = 0
        width_mult: float = Field(1.0, gt=0)
        delay: float = Field(0.0, ge=0)  # seconds slept per evaluation

    def __init__(self, space: SearchSpace, noise: float = 0.0, noise_seed: int = 0, width_mult: float = 1.0,
                 delay: float = 0.0) -> None:
        super().__init__(space)
        missing = {f"d_{s}" for s in range(ofa_mbv3.N_STAGES)} - set(space.names)
        if missing:
            raise ConfigError(f"evaluator 'synthetic_mbv3' needs the ofa_mbv3 space, not '{space.name}'")
        self.noise, self.noise_seed, self.width_mult = float(noise), int(noise_seed), float(width_mult)
        # Seconds slept per evaluation, to stand in for an expensive validation; measurements are unchanged.
        self.delay = float(delay)
        ranges = [_stage_capacity_range(s) for s in range(ofa_mbv3.N_STAGES)]
        self._c_min = sum(r[0] for r in ranges)
        self._c_max = sum(r[1] for r in ranges)

    @property
    def identity(self) -> str:
        return f"synthetic_mbv3:noise={self.noise}:seed={self.noise_seed}:w={self.width_mult}"

    def evaluate_one(self, config: Mapping[str, Any], fidelity: float = 1.0) -> dict[str, float]:
        if self.delay:
            time.sleep(self.delay)
        layers = ofa_mbv3.layer_shapes(config, width_mult=self.width_mult)
        latency = sum(_layer_latency(layer) for layer in layers)
        capacity = 0.0
        for s, i, k, e in ofa_mbv3.active_blocks(config):
            capacity += _block_capacity(s, i % ofa_mbv3.MAX_DEPTH, k, e)
        u = (capacity - self._c_min) / (self._c_max - self._c_min)
        top1 = 62 + 16 * (1 - math.exp(-3 * u)) / (1 - math.exp(-3))
        top1 += 3 * math.log2(int(config.get("resolution", 224)) / 224)
        if self.noise:
            top1 += self.noise * self._noise_draw(config)
        if fidelity < 1:
            top1 += 0.5 * math.sqrt((1 - fidelity) / fidelity) * self._noise_draw(config, f":{float(fidelity)!r}")
        return {"top1": top1, "latency": latency, "macs": sum(x.macs() for x in layers) / 1e6,
                "params": ofa_mbv3.params(config, width_mult=self.width_mult) / 1e6}

    def _noise_draw(self, config: Mapping[str, Any], salt: str = "") -> float:
        key = self.space.key(self.space.from_config(config))
        digest = hashlib.sha256(f"{self.noise_seed}:{key}{salt}".encode()).digest()
        return float(np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal())


def _layer_latency(layer: ofa_mbv3.LayerShape) -> float:
    overhead = 0.05 + (0.04 if layer.se else 0.0)
    depthwise = layer.out_size ** 2 * layer.mid_channels * layer.kernel ** 2 if layer.kind == "mbconv" else 0
    pointwise = layer.macs() - depthwise
    return (pointwise / 20 + depthwise * (1 + 0.15 * (layer.kernel - 3)) / 2) / 1e6 + overhead
