"""Static MobileNetV3 layers of an extracted subnet.

Module names follow OFA's static ``MobileNetV3`` (``conv``, ``bn``, ``inverted_bottleneck``,
``depth_conv``, ``se.fc.reduce``, ``point_linear``...), so a subnet's state dict reads
like the one OFA's ``get_active_subnet`` produces.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from linas.spaces.ofa_mbv3 import se_channels

from .arch import BlockSpec


def activation(name: str) -> nn.Module:
    """The activation a layer config names (``relu`` or ``h_swish``)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation '{name}'")


class ConvBNAct(nn.Module):
    """Convolution, optional batch norm, activation (OFA's ``ConvLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 act: str = "relu", use_bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False)
        if use_bn:
            self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.act(x)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate, reduction 4 rounded to 8 channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = se_channels(channels)
        self.fc = nn.Sequential(OrderedDict([
            ("reduce", nn.Conv2d(channels, mid, 1, bias=True)),
            ("relu", nn.ReLU(inplace=True)),
            ("expand", nn.Conv2d(mid, channels, 1, bias=True)),
            ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand (absent at ratio 1), depthwise k x k (+SE), 1x1 project."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.mid_channels
        if mid != spec.in_channels:
            self.inverted_bottleneck = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(spec.in_channels, mid, 1, bias=False)),
                ("bn", nn.BatchNorm2d(mid)),
                ("act", activation(spec.act)),
            ]))
        else:
            self.inverted_bottleneck = None
        depth = OrderedDict([
            ("conv", nn.Conv2d(mid, mid, spec.kernel, spec.stride, spec.kernel // 2, groups=mid, bias=False)),
            ("bn", nn.BatchNorm2d(mid)),
            ("act", activation(spec.act)),
        ])
        if spec.se:
            depth["se"] = SqueezeExcite(mid)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(mid, spec.out_channels, 1, bias=False)),
            ("bn", nn.BatchNorm2d(spec.out_channels)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """A block with an identity shortcut where stride is 1 and widths match."""

    def __init__(self, conv: nn.Module, residual: bool) -> None:
        super().__init__()
        self.conv = conv
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class Classifier(nn.Module):
    """Dropout then linear (OFA's ``LinearLayer``; key ``classifier.linear.*``)."""

    def __init__(self, in_features: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))
