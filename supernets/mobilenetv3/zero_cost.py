"""The ``zc_mbv3`` evaluator: zero-cost proxies of OFA-MobileNetV3 subnets (no validation).

Each evaluation extracts the subnet with the supernet's inherited weights and scores it
on one fixed minibatch of training images (``batch`` images drawn with ``batch_seed``,
the same for every subnet): ``grad_norm``, ``snip``, ``naswot``, ``jacob_cov`` and
``synflow`` (definitions in :mod:`supernets.zero_cost`), with ``macs`` and ``params``
(millions) and ``zc_seconds``, the wall time of extracting and scoring the subnet.

- ``grad_norm``, ``snip``: cross-entropy of the minibatch, one backward pass; sums over the
  weights of every ``Conv2d`` and ``Linear``;
- ``naswot``: codes ``[pre-activation > 0]`` of every ReLU and h-swish (h-swish is zero at
  0 and negative just below it, so "> 0" is its active side), one sample per image;
- ``jacob_cov``: Jacobian of the summed logits with respect to each input image;
- ``synflow``: BN layers removed, ``|params|``, one all-ones image in double; the log of the score.

The subnet runs with BN in training mode (batch statistics: the inherited running
statistics are the supernet's, not the subnet's; the measured evaluator recalibrates them,
a proxy must not) and dropout off, as in Abdelfattah et al.'s code.

Experiment config::

    evaluator:
      name: zc_mbv3
      options:
        checkpoint: results/mbv3/tiny_imagenet/supernet.pt
        data: {kind: tiny_imagenet, root: ~/.cache/linas/data/tiny-imagenet-200, load_size: 64, stream: true}
        resolution: 32
        batch: 64
        proxies: [snip, jacob_cov]   # optional: compute only these (default: all five)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.registry import Options
from linas.space import SearchSpace
from supernets import zero_cost as zc
from supernets.devices import resolve_device

from .arch import subnet_config
from .checkpoint import file_digest, load_supernet
from .data import DataSettings, load_split
from .latency import threads

#: Proxies this evaluator reports, higher is better for each (as the literature ranks them).
PROXIES = ("synflow", "grad_norm", "snip", "naswot", "jacob_cov")
#: Bumped when a proxy's definition changes (part of the identity, so cached scores are not reused).
VERSION = 1


def mbv3_proxies(subnet: nn.Module, x: torch.Tensor, y: torch.Tensor, proxies: tuple[str, ...] = PROXIES
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """``(proxy scores, seconds per proxy)`` of an extracted MobileNetV3 subnet on the minibatch ``x, y``
    (only the ``proxies`` named).

    The subnet is left as it was (synflow runs on a copy; BN running statistics, which
    training mode updates, are put back).
    """
    times: dict[str, float] = {}
    out: dict[str, float] = {}
    was_training = subnet.training
    buffers = {name: b.clone() for name, b in subnet.named_buffers()}
    subnet.train()
    zc.dropout_off(subnet)
    weights = zc.weights_of(subnet)
    gradient = [p for p in ("grad_norm", "snip") if p in proxies]
    if gradient:
        out.update(zc.gradient_proxies(lambda: F.cross_entropy(subnet(x), y), weights, times, gradient))
    if "naswot" in proxies:
        with zc.timed(times, "naswot"), torch.no_grad():
            rectifiers = [m for m in subnet.modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
            with zc.ActivationCodes(rectifiers) as codes:
                subnet(x)
                out["naswot"] = zc.naswot_score(codes.codes())
    if "jacob_cov" in proxies:
        with zc.timed(times, "jacob_cov"):
            xr = x.detach().clone().requires_grad_(True)
            (jac,) = torch.autograd.grad(subnet(xr).sum(), xr)
            out["jacob_cov"] = zc.jacob_cov_score(jac)
    if "synflow" in proxies:
        with zc.timed(times, "synflow"):
            net = zc.make_positive(zc.remove_modules(copy.deepcopy(subnet), (nn.modules.batchnorm._BatchNorm,)))
            net.eval()
            ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
            out["synflow"] = zc.log_score(zc.synflow_score(zc.weights_of(net), net(ones)))
    with torch.no_grad():
        for name, b in subnet.named_buffers():
            b.copy_(buffers[name])
    subnet.train(was_training)
    return out, times


class ZeroCostOptions(Options):
    """Options of the ``zc_mbv3`` evaluator."""

    checkpoint: str
    data: DataSettings
    resolution: int = Field(224, ge=8)
    batch: int = Field(64, ge=2)  # images in the fixed minibatch (NASWOT's and jacob_cov's matrices are batch x batch)
    batch_seed: int = 0
    threads: int | None = None
    device: str = "auto"
    proxies: list[str] | None = None  # compute only these (default: all of PROXIES)

    @field_validator("proxies")
    @classmethod
    def _known_proxies(cls, v: list[str] | None) -> list[str] | None:
        zc.check_proxies(v, PROXIES)
        return v


@evaluators.register("zc_mbv3")
class ZeroCostMbv3Evaluator(Evaluator):
    """Zero-cost proxies (synflow, grad_norm, snip, naswot, jacob_cov) of OFA-MobileNetV3 subnets, their cost, MACs, params."""

    metrics = tuple(Objective(p, "max") for p in PROXIES) + (
        Objective("zc_seconds", "min", "s"), Objective("macs", "min", "M"), Objective("params", "min", "M"))

    Options = ZeroCostOptions

    def __init__(self, space: SearchSpace, **options: Any) -> None:
        super().__init__(space)
        self.options = ZeroCostOptions(**options)
        o = self.options
        self.proxies = zc.check_proxies(o.proxies, PROXIES)
        if self.proxies != PROXIES:  # this instance measures fewer metrics than the class declares
            self.metrics = tuple(m for m in type(self).metrics if m.name not in PROXIES or m.name in self.proxies)
        self.device = resolve_device(o.device, "evaluator zc_mbv3")
        self.supernet = load_supernet(o.checkpoint).to(self.device).eval()
        self._checkpoint_digest = file_digest(o.checkpoint)
        images = load_split(o.data, "train").subset(o.batch, o.batch_seed).materialize()
        if images.n_classes != self.supernet.n_classes:
            raise ConfigError(f"evaluator zc_mbv3: the data has {images.n_classes} classes, "
                              f"the supernet {self.supernet.n_classes}")
        self.images = images

    def minibatch(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed minibatch at ``resolution``, on the evaluator's device."""
        x, y = next(self.images.eval_batches(resolution, len(self.images)))
        return x.to(self.device), y.to(self.device)

    @property
    def identity(self) -> str:
        o = self.options
        data = json.dumps(o.data.identity(), sort_keys=True)
        device = "" if self.device.type == "cpu" else f":device={self.device.type}"
        return (f"zc_mbv3:v{VERSION}:ckpt={self._checkpoint_digest}:data={data}:r={o.resolution}"
                f":batch={o.batch}/{o.batch_seed}{device}"
                + ("" if self.proxies == PROXIES else f":proxies={','.join(self.proxies)}"))

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        o = self.options
        start = time.perf_counter()
        config = subnet_config(config)
        r = int(config.get("resolution", o.resolution))
        net = self.supernet
        net.set_active_subnet(config)
        with threads(o.threads):
            subnet = net.get_active_subnet().to(self.device)
            x, y = self.minibatch(r)
            out, _ = mbv3_proxies(subnet, x, y, self.proxies)
        out["zc_seconds"] = time.perf_counter() - start
        out.update(macs=net.active_macs(r) / 1e6, params=net.active_params() / 1e6)
        return out
