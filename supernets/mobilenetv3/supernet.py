"""The OFA MobileNetV3 supernet (Cai et al., ICLR'20).

The trio of OFA's interface, without its global flags:

- :meth:`OFAMobileNetV3.set_active_subnet` selects a subnet by config;
- :meth:`OFAMobileNetV3.get_active_subnet` returns it as a standalone static module
  with the same outputs;
- :attr:`OFAMobileNetV3.active_config` gives the active config back.

Example::

    net = OFAMobileNetV3(n_classes=10, width_mult=0.5)
    net.set_active_subnet({"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5})
    static = net.get_active_subnet()           # plain nn.Module
    torch.allclose(net.eval()(x), static.eval()(x), atol=1e-5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from linas.spaces.ofa_mbv3 import (
    MAX_DEPTH,
    N_BLOCKS,
    N_STAGES,
    STAGE_ACTS,
    STAGE_SE,
    STAGE_STRIDES,
    macs,
    params,
)

from .arch import BlockSpec, _space, max_config, net_spec, stage_widths, subnet_config
from .elastic import ElasticMBConv
from .layers import Classifier, ConvBNAct, MBConv, ResidualBlock
from .subnet import MobileNetV3Subnet


class OFAMobileNetV3(nn.Module):
    """OFA's MobileNetV3 supernet: elastic kernel {3,5,7}, expand {3,4,6}, depth {2,3,4}.

    ``width_mult`` 1.0 and 1.2 give the layer shapes of OFA's released
    ``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``; smaller multipliers and any
    ``n_classes`` make CPU-sized supernets.
    """

    def __init__(self, n_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.1,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.width_mult = float(width_mult)
        self.dropout = float(dropout)
        widths = stage_widths(width_mult)
        stem = widths["stem"]
        self.first_conv = ConvBNAct(3, stem, 3, 2, act="h_swish")
        first = BlockSpec("first_block", stem, stem, stem, 3, 1, "relu", False)
        blocks: list[nn.Module] = [ResidualBlock(MBConv(first), residual=True)]
        in_ch = stem
        for s in range(N_STAGES):
            out_ch = widths["stages"][s]
            for j in range(MAX_DEPTH):
                stride = STAGE_STRIDES[s] if j == 0 else 1
                conv = ElasticMBConv(in_ch, out_ch, stride, STAGE_ACTS[s], STAGE_SE[s])
                blocks.append(ResidualBlock(conv, residual=stride == 1 and in_ch == out_ch))
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = ConvBNAct(in_ch, widths["final_expand"], 1, act="h_swish")
        self.feature_mix_layer = ConvBNAct(widths["final_expand"], widths["last_channel"], 1, act="h_swish",
                                           use_bn=False)
        self.classifier = Classifier(widths["last_channel"], self.n_classes, self.dropout)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = bn_momentum, bn_eps
        self._init_weights()
        self._depths = [MAX_DEPTH] * N_STAGES
        self._config: dict[str, Any] = {}
        self.set_active_subnet(max_config())

    def _init_weights(self) -> None:
        # He init (fan-out) for convs and a small uniform linear, as OFA's init_model("he_fout").
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1.0 / m.weight.size(1) ** 0.5, 1.0 / m.weight.size(1) ** 0.5)
                nn.init.zeros_(m.bias)
        # Residual blocks start as identities (zero scale on their last BN, Goyal et al. 2017):
        # from-scratch training of the deep supernet on small data gets going several times
        # faster. Loading OFA's weights overwrites this.
        for block in self.blocks:
            if block.residual:
                bn = block.conv.point_linear.bn
                nn.init.zeros_(getattr(bn, "bn", bn).weight)

    # ------------------------------------------------------------- active subnet
    def set_active_subnet(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Activate a subnet (flat search-space config or OFA's ``ks/e/d`` lists); returns it canonical."""
        config = subnet_config(config)
        for i in range(N_BLOCKS):
            conv = self.blocks[1 + i].conv
            conv.active_kernel = int(config[f"ks_{i}"])
            conv.active_expand = int(config[f"e_{i}"])
        self._depths = [int(config[f"d_{s}"]) for s in range(N_STAGES)]
        self._config = config
        return dict(config)

    def sample_active_subnet(self, rng: np.random.Generator) -> dict[str, Any]:
        """Activate a uniformly sampled subnet; returns its config."""
        space = _space()
        return self.set_active_subnet(space.to_config(space.sample(rng, 1)[0]))

    @property
    def active_config(self) -> dict[str, Any]:
        return dict(self._config)

    def active_block_indices(self) -> list[int]:
        """Indices into ``self.blocks`` that the active subnet runs (the fixed first block included)."""
        out = [0]
        for s, d in enumerate(self._depths):
            out.extend(1 + s * MAX_DEPTH + j for j in range(d))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for i in self.active_block_indices():
            x = self.blocks[i](x)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    # ------------------------------------------------------------- extraction
    def active_spec(self, resolution: int | None = None):
        """The :class:`~supernets.mobilenetv3.arch.NetSpec` of the active subnet."""
        return net_spec(self._config, self.width_mult, self.n_classes, resolution)

    @torch.no_grad()
    def get_active_subnet(self) -> MobileNetV3Subnet:
        """A standalone static copy of the active subnet (weights copied, not shared)."""
        net = MobileNetV3Subnet(self.active_spec(), dropout=self.dropout)
        state: dict[str, torch.Tensor] = {}
        own = self.state_dict()
        for prefix in ("first_conv.", "blocks.0.", "final_expand_layer.", "feature_mix_layer.", "classifier."):
            state.update({k: v for k, v in own.items() if k.startswith(prefix)})
        in_ch = self.blocks[0].conv.point_linear.conv.out_channels
        for position, index in enumerate(self.active_block_indices()[1:], start=1):
            conv = self.blocks[index].conv
            for k, v in conv.static_state(in_ch).items():
                state[f"blocks.{position}.conv.{k}"] = v
            in_ch = conv.out_channels
        net.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True)
        bn = next(m for m in self.modules() if isinstance(m, nn.BatchNorm2d))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = bn.momentum, bn.eps
        return net.train(self.training)

    # ------------------------------------------------------------- cost
    def active_macs(self, resolution: int | None = None) -> int:
        """Analytic multiply-accumulates of the active subnet for one image."""
        r = resolution or self._config.get("resolution", 224)
        return macs(self._config, width_mult=self.width_mult, resolution=r, n_classes=self.n_classes)

    def active_params(self) -> int:
        """Analytic parameter count of the active subnet."""
        return params(self._config, width_mult=self.width_mult, n_classes=self.n_classes)
