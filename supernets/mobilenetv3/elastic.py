"""Elastic operations of the supernet: weights shared by first-k slicing.

Every op reads its input width from the tensor it is given (``x.size(1)``), so a
subnet needs no width bookkeeping; the few choices that are not visible in the input
(kernel size, expand ratio, output width) live on the instance, never on the class.
Parameter and submodule names reproduce OFA's dynamic layers so its released state
dicts load without renaming (``depth_conv.conv.7to5_matrix``, ``bn.bn.running_mean``...).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from linas.spaces.ofa_mbv3 import EXPANDS, KERNELS, make_divisible, se_channels

from .layers import activation


def middle_channels(in_channels: int, expand: float) -> int:
    """Width of a block's depthwise layer (OFA rounds, then makes divisible by 8)."""
    return make_divisible(round(in_channels * expand))


class ElasticPointwiseConv(nn.Module):
    """1x1 convolution using the first ``out`` filters over the first ``x.size(1)`` inputs."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(max_in, max_out, 1, bias=False)

    def weight(self, out_channels: int, in_channels: int) -> torch.Tensor:
        return self.conv.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        return F.conv2d(x, self.weight(out_channels, x.size(1)))


class ElasticDepthwiseConv(nn.Module):
    """Depthwise convolution with an elastic kernel.

    The 7x7 kernel is stored; a 5x5 kernel is its centre crop mapped through a learned
    25x25 matrix, a 3x3 kernel the centre of that mapped through a 9x9 matrix. The
    matrices are shared across channels and start as identities (plain centre crops).
    """

    def __init__(self, max_channels: int, stride: int, kernels: tuple[int, ...] = KERNELS) -> None:
        super().__init__()
        self.kernels = tuple(sorted(kernels))
        self.stride = stride
        k = self.kernels[-1]
        self.conv = nn.Conv2d(max_channels, max_channels, k, stride, k // 2, groups=max_channels, bias=False)
        for big, small in self._steps():
            self.register_parameter(f"{big}to{small}_matrix", nn.Parameter(torch.eye(small * small)))

    def _steps(self) -> list[tuple[int, int]]:
        ks = self.kernels
        return [(ks[i + 1], ks[i]) for i in range(len(ks) - 2, -1, -1)]

    def weight(self, channels: int, kernel: int) -> torch.Tensor:
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} is not one of {self.kernels}")
        w = self.conv.weight[:channels]
        for big, small in self._steps():
            if big <= kernel:
                break
            start = (big - small) // 2
            crop = w[:, :, start:start + small, start:start + small].reshape(channels, small * small)
            w = F.linear(crop, getattr(self, f"{big}to{small}_matrix")).reshape(channels, 1, small, small)
        return w

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        c = x.size(1)
        return F.conv2d(x, self.weight(c, kernel), None, self.stride, kernel // 2, 1, c)


class ElasticBatchNorm(nn.Module):
    """Batch norm over the first ``x.size(1)`` channels of a full-width ``bn``.

    Running statistics of the used channels are updated in place through views, so a
    subnet trains the same shared statistics as the full network.
    """

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(max_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        c = x.size(1)
        if c == bn.num_features:
            return bn(x)
        use_batch_stats = bn.training or not bn.track_running_stats
        momentum = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            use_batch_stats, momentum, bn.eps)

    def static_state(self, channels: int, prefix: str) -> dict[str, torch.Tensor]:
        bn = self.bn
        return {f"{prefix}weight": bn.weight[:channels], f"{prefix}bias": bn.bias[:channels],
                f"{prefix}running_mean": bn.running_mean[:channels],
                f"{prefix}running_var": bn.running_var[:channels],
                f"{prefix}num_batches_tracked": bn.num_batches_tracked}


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-and-excite over the first ``x.size(1)`` channels, reduction 4."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        mid = se_channels(max_channels)
        self.fc = nn.Sequential(OrderedDict([
            ("reduce", nn.Conv2d(max_channels, mid, 1, bias=True)),
            ("relu", nn.ReLU(inplace=True)),
            ("expand", nn.Conv2d(mid, max_channels, 1, bias=True)),
            ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        r = se_channels(c)
        fc = self.fc
        y = x.mean((2, 3), keepdim=True)
        y = F.conv2d(y, fc.reduce.weight[:r, :c], fc.reduce.bias[:r])
        y = fc.relu(y)
        y = F.conv2d(y, fc.expand.weight[:c, :r], fc.expand.bias[:c])
        return x * fc.h_sigmoid(y)

    def static_state(self, channels: int, prefix: str) -> dict[str, torch.Tensor]:
        fc, r = self.fc, se_channels(channels)
        return {f"{prefix}fc.reduce.weight": fc.reduce.weight[:r, :channels],
                f"{prefix}fc.reduce.bias": fc.reduce.bias[:r],
                f"{prefix}fc.expand.weight": fc.expand.weight[:channels, :r],
                f"{prefix}fc.expand.bias": fc.expand.bias[:channels]}


class ElasticMBConv(nn.Module):
    """Inverted bottleneck with elastic kernel and expand ratio.

    ``active_kernel`` and ``active_expand`` are set by the supernet for the active subnet.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: str, se: bool,
                 kernels: tuple[int, ...] = KERNELS, expands: tuple[float, ...] = EXPANDS) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride
        self.use_se = se
        mid = middle_channels(in_channels, max(expands))
        self.inverted_bottleneck = nn.Sequential(OrderedDict([
            ("conv", ElasticPointwiseConv(in_channels, mid)),
            ("bn", ElasticBatchNorm(mid)),
            ("act", activation(act)),
        ]))
        depth = OrderedDict([
            ("conv", ElasticDepthwiseConv(mid, stride, kernels)),
            ("bn", ElasticBatchNorm(mid)),
            ("act", activation(act)),
        ])
        if se:
            depth["se"] = ElasticSqueezeExcite(mid)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = nn.Sequential(OrderedDict([
            ("conv", ElasticPointwiseConv(mid, out_channels)),
            ("bn", ElasticBatchNorm(out_channels)),
        ]))
        self.active_kernel = max(kernels)
        self.active_expand = max(expands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = middle_channels(x.size(1), self.active_expand)
        ib, dc, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        x = ib.act(ib.bn(ib.conv(x, mid)))
        x = dc.act(dc.bn(dc.conv(x, self.active_kernel)))
        if self.use_se:
            x = dc.se(x)
        return pl.bn(pl.conv(x, self.out_channels))

    def static_state(self, in_channels: int) -> dict[str, torch.Tensor]:
        """Weights of the active block as a static :class:`~supernets.mobilenetv3.layers.MBConv` state dict."""
        mid = middle_channels(in_channels, self.active_expand)
        ib, dc, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        state = {"inverted_bottleneck.conv.weight": ib.conv.weight(mid, in_channels)}
        state.update(ib.bn.static_state(mid, "inverted_bottleneck.bn."))
        state["depth_conv.conv.weight"] = dc.conv.weight(mid, self.active_kernel)
        state.update(dc.bn.static_state(mid, "depth_conv.bn."))
        if self.use_se:
            state.update(dc.se.static_state(mid, "depth_conv.se."))
        state["point_linear.conv.weight"] = pl.conv.weight(self.out_channels, mid)
        state.update(pl.bn.static_state(self.out_channels, "point_linear.bn."))
        return state
