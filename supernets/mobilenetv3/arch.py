"""Subnet configurations and the static architecture they describe.

A subnet is given either as a flat config of the ``ofa_mbv3`` search space
(``{"ks_0": 7, ..., "e_19": 3, "d_0": 4, ..., "resolution": 160}``) or in OFA's own
form (``{"ks": [20 kernels], "e": [20 ratios], "d": [5 depths], "r": 160}``).
:func:`subnet_config` validates either and returns the canonical flat config;
:func:`net_spec` turns it into the layer-by-layer description that the static
subnet, the timm export, MACs and the latency table all share, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from linas.errors import ConfigError
from linas.space import SearchSpace
from linas.spaces.ofa_mbv3 import (
    DEPTHS,
    EXPANDS,
    FINAL_EXPAND_WIDTH,
    KERNELS,
    LAST_CHANNEL,
    MAX_DEPTH,
    N_BLOCKS,
    N_STAGES,
    STAGE_WIDTHS,
    STEM_WIDTH,
    LayerShape,
    layer_shapes,
    make_divisible,
    ofa_mbv3_space,
)

__all__ = ["BlockSpec", "NetSpec", "max_config", "min_config", "net_spec", "subnet_config"]

MIN_RESOLUTION = 32


@lru_cache(maxsize=1)
def _space() -> SearchSpace:
    return ofa_mbv3_space()


def subnet_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a subnet config (flat or OFA-style) and return its canonical flat form.

    Raises :class:`~linas.errors.ConfigError` naming the offending value, e.g. an
    unknown kernel size, a depth outside {2, 3, 4} or a list of the wrong length.

    Example::

        subnet_config({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5})["ks_19"]  # 7
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a subnet config is a mapping, got {type(config).__name__}")
    flat = dict(_from_ofa_style(config)) if {"ks", "e", "d"} & set(config) else dict(config)
    resolution = flat.pop("resolution", None)
    genome = _space().from_config(flat)
    out = _space().to_config(genome)
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
            raise ConfigError(f"resolution must be an integer >= {MIN_RESOLUTION}, got {resolution!r}")
        out["resolution"] = int(resolution)
    return out


def _from_ofa_style(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(config) - {"ks", "e", "d", "r", "resolution"}
    if unknown:
        raise ConfigError(f"OFA-style subnet config: unknown key(s) {sorted(unknown)}; expected ks, e, d, r")
    flat: dict[str, Any] = {}
    for key, n, prefix in (("ks", N_BLOCKS, "ks"), ("e", N_BLOCKS, "e"), ("d", N_STAGES, "d")):
        values = config.get(key)
        if values is None:
            raise ConfigError(f"OFA-style subnet config: missing '{key}'")
        if isinstance(values, (int, float)):
            values = [values] * n
        values = list(values)
        if len(values) != n:
            raise ConfigError(f"OFA-style subnet config: '{key}' needs {n} values, got {len(values)}")
        flat.update({f"{prefix}_{i}": v for i, v in enumerate(values)})
    # OFA keeps kernel/expand values for blocks a stage's depth skips; the space wants
    # them canonical, so drop them here rather than reject a valid OFA config.
    for s in range(N_STAGES):
        for j in range(MAX_DEPTH):
            if j >= _as_int(flat[f"d_{s}"], f"d_{s}"):
                flat.pop(f"ks_{s * MAX_DEPTH + j}")
                flat.pop(f"e_{s * MAX_DEPTH + j}")
    r = config.get("r", config.get("resolution"))
    if r is not None:
        flat["resolution"] = r
    return flat


def _as_int(value: Any, name: str) -> int:
    if value not in DEPTHS:
        raise ConfigError(f"space 'ofa_mbv3': {name}={value!r} is not one of {list(DEPTHS)}")
    return int(value)


def max_config() -> dict[str, Any]:
    """The largest subnet: kernel 7, expand 6, depth 4 everywhere."""
    return subnet_config({"ks": max(KERNELS), "e": max(EXPANDS), "d": max(DEPTHS)})


def min_config() -> dict[str, Any]:
    """The smallest subnet: kernel 3, expand 3, depth 2 everywhere."""
    return subnet_config({"ks": min(KERNELS), "e": min(EXPANDS), "d": min(DEPTHS)})


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block of a static subnet."""

    name: str  # "first_block" or "blocks.<supernet index>"
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    act: str
    se: bool

    @property
    def expand(self) -> float:
        return self.mid_channels / self.in_channels

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class NetSpec:
    """Everything needed to build a static subnet, its timm twin, or to count its cost."""

    stem: int
    blocks: tuple[BlockSpec, ...]
    final_expand: int
    last_channel: int
    n_classes: int
    resolution: int
    layers: tuple[LayerShape, ...]


def net_spec(config: Mapping[str, Any], width_mult: float = 1.0, n_classes: int = 1000,
             resolution: int | None = None) -> NetSpec:
    """The static architecture of a subnet (validated) at ``resolution`` (default: its own or 224)."""
    config = subnet_config(config)
    r = int(resolution or config.get("resolution", 224))
    layers = tuple(layer_shapes(config, width_mult=width_mult, resolution=r, n_classes=n_classes))
    blocks = tuple(BlockSpec(layer.name, layer.in_channels, layer.mid_channels, layer.out_channels, layer.kernel,
                             layer.stride, layer.act, layer.se)
                   for layer in layers if layer.kind == "mbconv")
    by_name = {layer.name: layer for layer in layers}
    return NetSpec(stem=by_name["first_conv"].out_channels, blocks=blocks,
                   final_expand=by_name["final_expand_layer"].out_channels,
                   last_channel=by_name["feature_mix_layer"].out_channels,
                   n_classes=n_classes, resolution=r, layers=layers)


def stage_widths(width_mult: float) -> dict[str, int]:
    """Channel counts of the fixed layers at a width multiplier (as OFA rounds them)."""
    return {"stem": make_divisible(STEM_WIDTH * width_mult),
            "stages": [make_divisible(w * width_mult) for w in STAGE_WIDTHS],
            "final_expand": make_divisible(FINAL_EXPAND_WIDTH * width_mult),
            "last_channel": make_divisible(LAST_CHANNEL * width_mult)}
