"""The OFA MobileNetV3 search space and its layer shapes (no torch needed).

45 variables: ``ks_0..ks_19`` (kernel {3,5,7}), ``e_0..e_19`` (expand ratio {3,4,6})
for the 20 blocks (4 per stage, stage ``s`` holds blocks ``4s..4s+3``) and
``d_0..d_4`` (depth {2,3,4}), plus an optional ``resolution``. Block ``j`` of a stage
is used only when the stage's depth exceeds ``j``; otherwise its kernel and expand
ratio are canonical (3 and 3).

:func:`layer_shapes` gives every layer of a subnet (channels, kernel, stride, feature
size) following OFA's MobileNetV3, from which :func:`macs` and :func:`params` count
multiply-accumulates and weights analytically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, PositiveInt

from linas.registry import Options
from linas.space import Condition, SearchSpace, Variable
from linas.spaces import spaces

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
N_STAGES = 5
MAX_DEPTH = 4
N_BLOCKS = N_STAGES * MAX_DEPTH

STAGE_WIDTHS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
STEM_WIDTH = 16
FINAL_EXPAND_WIDTH = 960
LAST_CHANNEL = 1280


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class OfaMbv3Options(Options):
    resolutions: list[PositiveInt] | None = Field(None, min_length=1)  # input sizes searched over


@spaces.register("ofa_mbv3", options=OfaMbv3Options)
def ofa_mbv3_space(resolutions: Sequence[int] | None = None) -> SearchSpace:
    """The 45-variable OFA MobileNetV3 space; ``resolutions`` adds a 46th variable."""
    variables = []
    for i in range(N_BLOCKS):
        variables.append(Variable(f"ks_{i}", KERNELS, _block_condition(i)))
    for i in range(N_BLOCKS):
        variables.append(Variable(f"e_{i}", EXPANDS, _block_condition(i)))
    for s in range(N_STAGES):
        variables.append(Variable(f"d_{s}", DEPTHS))
    if resolutions:
        variables.append(Variable("resolution", tuple(int(r) for r in resolutions)))
    return SearchSpace("ofa_mbv3", variables)


def _block_condition(block: int) -> Condition | None:
    stage, j = divmod(block, MAX_DEPTH)
    return None if j < min(DEPTHS) else Condition(f"d_{stage}", j + 1)


def active_blocks(config: Mapping[str, Any]) -> list[tuple[int, int, int, int]]:
    """``(stage, block index, kernel, expand)`` of every block the subnet runs."""
    out = []
    for s in range(N_STAGES):
        for j in range(int(config[f"d_{s}"])):
            i = s * MAX_DEPTH + j
            out.append((s, i, int(config[f"ks_{i}"]), int(config[f"e_{i}"])))
    return out


@dataclass(frozen=True)
class LayerShape:
    """One layer of a subnet: what MACs, parameters and latency tables need."""

    name: str
    kind: str  # "conv", "mbconv", "linear"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    in_size: int  # input feature map is in_size x in_size
    mid_channels: int = 0  # mbconv only
    se: bool = False
    act: str = "relu"

    @property
    def out_size(self) -> int:
        return -(-self.in_size // self.stride)

    def lut_key(self) -> str:
        """A stable description of the layer's shape, for latency lookup tables."""
        return (f"{self.kind}:{self.in_channels}-{self.mid_channels}-{self.out_channels}:k{self.kernel}"
                f":s{self.stride}:r{self.in_size}:se{int(self.se)}:{self.act}")

    def macs(self) -> int:
        o2 = self.out_size ** 2
        if self.kind == "linear":
            return self.in_channels * self.out_channels
        if self.kind == "conv":
            return o2 * self.in_channels * self.out_channels * self.kernel ** 2
        m = self.mid_channels
        total = 0
        if m != self.in_channels:  # expand 1x1 (absent when the expand ratio is 1)
            total += self.in_size ** 2 * self.in_channels * m
        total += o2 * m * self.kernel ** 2  # depthwise
        if self.se:
            r = se_channels(m)
            total += 2 * m * r
        total += o2 * m * self.out_channels  # project 1x1
        return total

    def params(self) -> int:
        if self.kind == "linear":
            return self.in_channels * self.out_channels + self.out_channels
        if self.kind == "conv":
            return self.in_channels * self.out_channels * self.kernel ** 2 + 2 * self.out_channels
        m = self.mid_channels
        total = 0
        if m != self.in_channels:
            total += self.in_channels * m + 2 * m
        total += m * self.kernel ** 2 + 2 * m
        if self.se:
            r = se_channels(m)
            total += m * r + r + r * m + m
        total += m * self.out_channels + 2 * self.out_channels
        return total


def se_channels(channels: int) -> int:
    return make_divisible(channels // 4, 8)


def layer_shapes(config: Mapping[str, Any], width_mult: float = 1.0, resolution: int | None = None,
                 n_classes: int = 1000) -> list[LayerShape]:
    """Every layer of the subnet ``config`` at ``resolution`` (default: its own or 224)."""
    r = int(resolution or config.get("resolution", 224))
    stem = make_divisible(STEM_WIDTH * width_mult)
    layers = [LayerShape("first_conv", "conv", 3, stem, 3, 2, r, act="h_swish")]
    size = layers[-1].out_size
    layers.append(LayerShape("first_block", "mbconv", stem, stem, 3, 1, size, mid_channels=stem))
    in_ch = stem
    blocks = active_blocks(config)
    for s, i, k, e in blocks:
        out_ch = make_divisible(STAGE_WIDTHS[s] * width_mult)
        first = i % MAX_DEPTH == 0
        stride = STAGE_STRIDES[s] if first else 1
        mid = make_divisible(round(in_ch * e))
        layer = LayerShape(f"blocks.{i}", "mbconv", in_ch, out_ch, k, stride, size, mid_channels=mid,
                           se=STAGE_SE[s], act=STAGE_ACTS[s])
        layers.append(layer)
        size, in_ch = layer.out_size, out_ch
    final_expand = make_divisible(FINAL_EXPAND_WIDTH * width_mult)
    last = make_divisible(LAST_CHANNEL * width_mult)
    layers.append(LayerShape("final_expand_layer", "conv", in_ch, final_expand, 1, 1, size, act="h_swish"))
    # After global average pooling the feature map is 1x1.
    layers.append(LayerShape("feature_mix_layer", "conv", final_expand, last, 1, 1, 1, act="h_swish"))
    layers.append(LayerShape("classifier", "linear", last, n_classes, 1, 1, 1))
    return layers


def macs(config: Mapping[str, Any], **kwargs: Any) -> int:
    """Multiply-accumulates of one forward pass of one image."""
    return sum(layer.macs() for layer in layer_shapes(config, **kwargs))


def params(config: Mapping[str, Any], **kwargs: Any) -> int:
    """Weights of the subnet (batch-norm affine parameters included)."""
    total = 0
    for layer in layer_shapes(config, **kwargs):
        p = layer.params()
        if layer.name == "feature_mix_layer":
            p -= 2 * layer.out_channels  # no batch norm there
        total += p
    return total
