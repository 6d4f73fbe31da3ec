"""A standalone, static MobileNetV3 extracted from the supernet."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .arch import NetSpec
from .layers import Classifier, ConvBNAct, MBConv, ResidualBlock


class MobileNetV3Subnet(nn.Module):
    """A plain MobileNetV3 built from a :class:`~supernets.mobilenetv3.arch.NetSpec`.

    It holds no elastic machinery: every layer has exactly the subnet's shapes, so it
    trains, exports and runs like any torchvision-style model.

    Example::

        spec = net_spec(max_config(), width_mult=0.5, n_classes=10, resolution=32)
        net = MobileNetV3Subnet(spec)
        net(torch.zeros(1, 3, 32, 32)).shape  # (1, 10)
    """

    def __init__(self, spec: NetSpec, dropout: float = 0.1) -> None:
        super().__init__()
        self.spec = spec
        self.first_conv = ConvBNAct(3, spec.stem, 3, 2, act="h_swish")
        self.blocks = nn.ModuleList(ResidualBlock(MBConv(b), b.residual) for b in spec.blocks)
        last_width = spec.blocks[-1].out_channels
        self.final_expand_layer = ConvBNAct(last_width, spec.final_expand, 1, act="h_swish")
        self.feature_mix_layer = ConvBNAct(spec.final_expand, spec.last_channel, 1, act="h_swish", use_bn=False)
        self.classifier = Classifier(spec.last_channel, spec.n_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    def describe(self) -> dict[str, Any]:
        """Shapes of the blocks, for logs and reports."""
        return {"stem": self.spec.stem, "resolution": self.spec.resolution,
                "blocks": [f"{b.name}: {b.in_channels}->{b.mid_channels}->{b.out_channels} k{b.kernel} s{b.stride}"
                           f"{' se' if b.se else ''} {b.act}" for b in self.spec.blocks]}
