"""Batch-norm recalibration and top-1 accuracy of a subnet.

A subnet inherits the supernet's running BN statistics, which were accumulated over
many different subnets and do not fit any one of them. Before measuring accuracy its
statistics are recomputed on a fixed set of training images (OFA: 2,000 images,
batches of 200): each BN layer's running mean and variance become the average of the
exact batch statistics over those batches (PyTorch's cumulative moving average,
``momentum=None``), so the result does not depend on the order of earlier calls.

Both run on the device of the model's weights: batches are moved there as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .data import ImageSet
from .supernet import OFAMobileNetV3


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Replace every BN layer's running statistics by their average over ``batches``; returns ``model`` in eval mode.

    Example::

        subnet = supernet.get_active_subnet()
        recalibrate_bn(subnet, (x for x, _ in calib.eval_batches(64, 200)))
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    model.eval()  # dropout off
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    device = _device_of(model)
    seen = 0
    for x in batches:
        model(x.to(device, non_blocking=True))
        seen += 1
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    if not seen:
        raise ValueError("recalibrate_bn: no calibration batches")
    return model.eval()


@torch.no_grad()
def top1(model: nn.Module, data: ImageSet, resolution: int, batch_size: int = 200) -> float:
    """Top-1 accuracy (%) of ``model`` in eval mode over ``data``."""
    model.eval()
    device = _device_of(model)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, y in data.eval_batches(resolution, batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        correct += (model(x).argmax(1) == y).sum()
    return 100.0 * int(correct) / max(len(data), 1)


def _device_of(model: nn.Module) -> torch.device:
    weight = next(model.parameters(), None)
    return weight.device if weight is not None else torch.device("cpu")


def subnet_top1(supernet: OFAMobileNetV3, config: Mapping[str, Any], calib: ImageSet, val: ImageSet,
                resolution: int, batch_size: int = 200) -> tuple[float, nn.Module]:
    """Extract ``config``, recalibrate its BN on ``calib``, return (top-1 % on ``val``, the subnet).

    The supernet itself is left unchanged (the subnet is a copy).
    """
    supernet.set_active_subnet(config)
    subnet = supernet.get_active_subnet()
    recalibrate_bn(subnet, (x for x, _ in calib.eval_batches(resolution, batch_size)))
    return top1(subnet, val, resolution, batch_size), subnet
