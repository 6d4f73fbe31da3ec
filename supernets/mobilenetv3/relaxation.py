"""The ``mbv3_supernet`` relaxation: the OFA MobileNetV3 supernet as one differentiable network.

Single-Path NAS style (Stamoulis et al., 2019), on frozen supernet weights:

- *kernel*: each block's depthwise superkernel is the weighted sum of its kernels, each
  (OFA's transformed centre crops) zero-padded to the largest, so a one-hot weight runs
  exactly that kernel (a zero-padded kernel with the matching padding gives the same output);
- *expand ratio*: the block runs its widest middle layer, and its channels are multiplied
  by the mixture of the masks ``[channel < mid(e)]`` after every per-channel op (BN and
  activation would turn a masked channel into the BN bias), and likewise the hidden
  channels of squeeze-and-excite;
- *depth*: a stage's output is the mixture of its outputs after 2, 3 and 4 blocks;
- *batch norm* normalizes with the statistics of the batch (running statistics are neither
  used nor updated): a subnet's own statistics, as BN recalibration gives it when it is
  validated, which no fixed set of running statistics of the supernet matches.

With one-hot weights (Gumbel straight-through samples in the forward pass) the output is
the extracted subnet's, with its BN in batch-statistics mode.

The task term is the cross-entropy of a batch of training images drawn afresh for each
step; the cost term is the expected latency from the lookup table (the evaluator's), exact
under the categorical distributions: each block's latency depends only on its own kernel
and expand ratio, and the block runs with the probability that its stage is deep enough.

    strategies:
      - name: gradient
        options:
          relaxation: mbv3_supernet
          relaxation_options:
            checkpoint: results/mbv3/tiny_imagenet/supernet.pt
            data: {kind: tiny_imagenet, root: data/tiny-imagenet-200, load_size: 32}
            resolution: 32
            lut: results/tiny_imagenet_mbv3/lut.json
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from linas.errors import ConfigError
from linas.registry import Options
from linas.relaxations import Relaxation, active_probabilities, relaxations
from linas.spaces.ofa_mbv3 import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_BLOCKS, N_STAGES, layer_shapes, se_channels
from linas.spec import Problem

from .arch import max_config
from .data import DataSettings
from .elastic import ElasticBatchNorm, ElasticMBConv, middle_channels
from .latency import LatencyTable
from .supernet import OFAMobileNetV3

# Rows of a weight matrix of the ofa_mbv3 space (variables in declaration order).
KS_ROWS = range(0, N_BLOCKS)
E_ROWS = range(N_BLOCKS, 2 * N_BLOCKS)
D_ROWS = range(2 * N_BLOCKS, 2 * N_BLOCKS + N_STAGES)


def _bn(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """Batch norm with the batch's statistics over the first ``x.size(1)`` channels of ``bn``."""
    bn = bn.bn if isinstance(bn, ElasticBatchNorm) else bn
    c = x.size(1)
    return F.batch_norm(x, None, None, bn.weight[:c], bn.bias[:c], True, 0.0, bn.eps)


def _conv_bn_act(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = layer.conv(x)
    if hasattr(layer, "bn"):
        x = _bn(x, layer.bn)
    return layer.act(x)


def _masks(in_channels: int, we: torch.Tensor, se: bool) -> tuple[int, torch.Tensor, torch.Tensor | None]:
    """Widest middle width, mixed channel mask of the middle layer and of the SE hidden layer."""
    mids = [middle_channels(in_channels, e) for e in EXPANDS]
    width = max(mids)
    mask = sum(we[i] * (torch.arange(width) < m).to(we.dtype) for i, m in enumerate(mids))
    se_mask = None
    if se:
        r = se_channels(width)
        se_mask = sum(we[i] * (torch.arange(r) < se_channels(m)).to(we.dtype) for i, m in enumerate(mids))
    return width, mask, se_mask


def mixed_block(conv: ElasticMBConv, x: torch.Tensor, wk: torch.Tensor, we: torch.Tensor) -> torch.Tensor:
    """One elastic block with kernel weights ``wk`` (over KERNELS) and expand weights ``we``."""
    ib, dc, pl = conv.inverted_bottleneck, conv.depth_conv, conv.point_linear
    width, mask, se_mask = _masks(x.size(1), we, conv.use_se)
    m = mask[None, :, None, None]
    h = ib.act(_bn(ib.conv(x, width), ib.bn)) * m
    big = max(KERNELS)
    kernel = 0
    for i, k in enumerate(KERNELS):
        pad = (big - k) // 2
        kernel = kernel + wk[i] * F.pad(dc.conv.weight(width, k), (pad, pad, pad, pad))
    h = F.conv2d(h, kernel, None, dc.conv.stride, big // 2, 1, width)
    h = dc.act(_bn(h, dc.bn)) * m
    if conv.use_se:
        fc, r = dc.se.fc, se_mask.numel()
        y = h.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, fc.reduce.weight[:r, :width], fc.reduce.bias[:r])) * se_mask[None, :, None, None]
        y = F.conv2d(y, fc.expand.weight[:width, :r], fc.expand.bias[:width])
        h = h * F.hardsigmoid(y)
    return _bn(pl.conv(h, conv.out_channels), pl.bn)


def mixed_forward(net: OFAMobileNetV3, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Logits of the supernet mixed by ``weights`` (``(45, 3)``: ks_*, e_*, d_* rows of the ofa_mbv3 space)."""
    x = _conv_bn_act(net.first_conv, x)
    first = net.blocks[0].conv  # fixed block without expand layer
    h = first.depth_conv.act(_bn(first.depth_conv.conv(x), first.depth_conv.bn))
    y = _bn(first.point_linear.conv(h), first.point_linear.bn)
    x = x + y if net.blocks[0].residual else y
    for s in range(N_STAGES):
        outs = []
        for j in range(MAX_DEPTH):
            i = s * MAX_DEPTH + j
            block = net.blocks[1 + i]
            y = mixed_block(block.conv, x, weights[KS_ROWS[i]], weights[E_ROWS[i]])
            x = x + y if block.residual else y
            outs.append(x)
        wd = weights[D_ROWS[s]]
        x = sum(wd[i] * outs[d - 1] for i, d in enumerate(DEPTHS))
    x = _conv_bn_act(net.final_expand_layer, x)
    x = net.feature_mix_layer.act(net.feature_mix_layer.conv(x.mean((2, 3), keepdim=True)))
    return net.classifier.linear(torch.flatten(x, 1))  # no dropout: the weights are frozen


def block_latency_tables(table: LatencyTable, resolution: int) -> tuple[float, np.ndarray]:
    """Latency of the fixed layers and ``(20, kernels, expands)`` of each block position (ms)."""
    meta = table.meta
    blocks = np.zeros((N_BLOCKS, len(KERNELS), len(EXPANDS)))
    fixed = 0.0
    for a, k in enumerate(KERNELS):
        for b, e in enumerate(EXPANDS):
            config = {**max_config(), **{f"ks_{i}": k for i in range(N_BLOCKS)},
                      **{f"e_{i}": e for i in range(N_BLOCKS)}}
            total = 0.0
            for layer in layer_shapes(config, meta["width_mult"], resolution, meta["n_classes"]):
                key = layer.lut_key()
                if key not in table.entries:
                    raise ConfigError(f"latency table has no entry for {key} (built for resolutions "
                                      f"{meta['resolutions']}, width {meta['width_mult']}); rebuild it")
                if layer.name.startswith("blocks."):
                    blocks[int(layer.name.split(".")[1]), a, b] = table.entries[key]
                else:
                    total += table.entries[key]
            fixed = total
    return fixed, blocks


def expected_lut_latency(space, probs: torch.Tensor, fixed: float, blocks: torch.Tensor) -> torch.Tensor:
    """Expected latency (ms) under independent categoricals ``probs`` (``(45, 3)``)."""
    act = active_probabilities(space, probs)
    pk = probs[KS_ROWS.start:KS_ROWS.stop]
    pe = probs[E_ROWS.start:E_ROWS.stop]
    per_block = torch.einsum("ik,ike,ie->i", pk, blocks.to(probs.dtype), pe)
    return fixed + (act[KS_ROWS.start:KS_ROWS.stop] * per_block).sum()


@relaxations.register("mbv3_supernet")
class Mbv3SupernetRelaxation(Relaxation):
    """Cross-entropy of the mixed supernet on training batches, expected lookup-table latency."""

    class Options(Options):
        checkpoint: str
        data: DataSettings
        lut: str
        resolution: int = Field(224, ge=32)
        images: int | None = Field(5000, ge=1)  # training images drawn from (a fixed subset)
        data_seed: int = 0
        batch_size: int = Field(64, ge=2)
        latency_objective: str = "latency"
        threads: int | None = Field(None, ge=1)
        device: str = "auto"

    def __init__(self, problem: Problem, seed: int, checkpoint: str, data: DataSettings | dict, lut: str,
                 resolution: int = 224, images: int | None = 5000, data_seed: int = 0, batch_size: int = 64,
                 latency_objective: str = "latency", threads: int | None = None, device: str = "auto",
                 supernet: OFAMobileNetV3 | None = None, train_data: Any = None) -> None:
        super().__init__(problem, seed)
        from supernets.devices import resolve_device

        from .checkpoint import load_supernet
        from .datasets import load_split

        if [v.name for v in self.space.variables] != [v.name for v in _space_variables()]:
            raise ConfigError("relaxation 'mbv3_supernet' needs the ofa_mbv3 space without a resolution variable "
                              f"(got '{self.space.name}' with {len(self.space)} variables)")
        names = [o.name for o in problem.objectives]
        if latency_objective not in names:
            raise ConfigError(f"relaxation 'mbv3_supernet': no objective '{latency_objective}' (objectives: {names})")
        self.latency_index = names.index(latency_objective)
        self.device = resolve_device(device, "relaxation mbv3_supernet")
        self.net = (supernet if supernet is not None else load_supernet(checkpoint)).to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.resolution, self.batch_size, self.threads = resolution, batch_size, threads
        if train_data is None:
            data = data if isinstance(data, DataSettings) else DataSettings(**data)
            train_data = load_split(data, "train").subset(images, data_seed).materialize()
        self.data = train_data
        self.table = LatencyTable.load(lut) if isinstance(lut, str) else lut
        fixed, blocks = block_latency_tables(self.table, resolution)
        self.fixed_latency, self.block_latency = fixed, torch.as_tensor(blocks)
        self._rng = np.random.default_rng([seed, 11])

    # ------------------------------------------------------------------ terms
    def expected_latency(self, probs: torch.Tensor) -> torch.Tensor:
        return expected_lut_latency(self.space, probs, self.fixed_latency, self.block_latency)

    def cost(self, probs: torch.Tensor) -> torch.Tensor:
        objective = self.problem.objectives[self.latency_index]
        lo, hi = objective.bounds if objective.bounds is not None else (0.0, 1.0)
        return (self.expected_latency(probs) - lo) / (hi - lo)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(self._rng.choice(len(self.data), min(self.batch_size, len(self.data)), replace=False))
        x = self.data.to_float(self.data.images[idx], self.resolution).to(self.device)
        return x, self.data.labels[idx].to(self.device)

    def task(self, weights: torch.Tensor) -> torch.Tensor:
        from .latency import threads

        x, y = self.batch()
        with threads(self.threads):
            logits = mixed_forward(self.net, x, weights.to(self.device, torch.float32))
        return F.cross_entropy(logits, y).to(torch.float64).cpu()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        from linas.strategies.base import rng_state

        return {"rng": rng_state(self._rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from linas.strategies.base import set_rng_state

        set_rng_state(self._rng, state["rng"])


def _space_variables():
    from .arch import _space

    return _space().variables
