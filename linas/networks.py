"""Networks written by hand or by other tools, turned into configs of a search space.

Three formats are understood, told apart by their keys:

- the space's own variable names: ``{"ks_0": 3, ..., "d_4": 2, "resolution": 192}``
  (variables a network does not use may be left out);
- OFA's native subnet spec: ``{"ks": [20 kernels], "e": [20 expand ratios], "d": [5 depths],
  "r": [resolution]}`` (``r`` an int or a list of one int; kernels and expand ratios of
  blocks beyond a stage's depth are ignored), for the ``ofa_mbv3`` and ``ofa_imagenet`` spaces;
- HAT's SubTransformer YAML (``encoder-embed-dim-subtransformer: 512``,
  ``decoder-ffn-embed-dim-all-subtransformer: [3072, 2048]``, ...) for the ``hat_*`` spaces.

Every problem is a one-line :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from linas.errors import ConfigError
from linas.space import SearchSpace

OFA_KEYS = frozenset({"ks", "e", "d", "r", "wid"})  # wid: None (fixed width)
HAT_SUFFIX = "-subtransformer"
# HAT SubTransformer key -> (variable of linas.spaces.hat_transformer, per layer, which layer count)
HAT_KEYS = {
    "encoder-embed-dim-subtransformer": ("encoder_embed_dim", None),
    "decoder-embed-dim-subtransformer": ("decoder_embed_dim", None),
    "encoder-layer-num-subtransformer": ("encoder_layer_num", None),
    "decoder-layer-num-subtransformer": ("decoder_layer_num", None),
    "encoder-ffn-embed-dim-all-subtransformer": ("encoder_ffn_embed_dim", "encoder_layer_num"),
    "decoder-ffn-embed-dim-all-subtransformer": ("decoder_ffn_embed_dim", "decoder_layer_num"),
    "encoder-self-attention-heads-all-subtransformer": ("encoder_self_attention_heads", "encoder_layer_num"),
    "decoder-self-attention-heads-all-subtransformer": ("decoder_self_attention_heads", "decoder_layer_num"),
    "decoder-ende-attention-heads-all-subtransformer": ("decoder_ende_attention_heads", "decoder_layer_num"),
    "decoder-arbitrary-ende-attn-all-subtransformer": ("decoder_arbitrary_ende_attn", "decoder_layer_num"),
}


def read_network_file(path: str | Path) -> Any:
    """The JSON or YAML content of a network file (one network, or a list of them)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text())  # JSON is YAML
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: neither JSON nor YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, (dict, list)) or not data:
        raise ConfigError(f"{p}: expected a network (a mapping of variables) or a list of them")
    return data


def parse_network_text(text: str) -> Any:
    """A network written in one string: JSON, or a Python literal such as DyNAS-T writes
    (``{'ks': [3, 5, ...], 'e': [...], 'd': [...], 'r': [224]}``)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(f"cannot read the network {text[:60]!r} (JSON or a Python literal expected)") from None


def network_format(data: Mapping[str, Any]) -> str:
    """``"ofa"``, ``"hat"`` or ``"space"``."""
    keys = set(data)
    if keys and keys <= OFA_KEYS and "ks" in keys:
        return "ofa"
    if keys and all(isinstance(k, str) and k.endswith(HAT_SUFFIX) for k in keys):
        return "hat"
    return "space"


def to_config(data: Any, space: SearchSpace) -> dict[str, Any]:
    """The canonical config of ``space`` that ``data`` describes (any of the three formats)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a network is a mapping of variables, not a {type(data).__name__}")
    kind = network_format(data)
    if kind == "ofa":
        config = _from_ofa(data, space)
    elif kind == "hat":
        config = _from_hat(data, space)
    else:
        config = {str(k): v for k, v in data.items()}
    genome = space.from_config(config)  # names an unknown, missing or out-of-range variable
    return space.to_config(genome)


def _from_ofa(data: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    from linas.benchmarks.ofa_imagenet import config_from_spec

    if "ks_0" not in space.names:
        raise ConfigError(f"an OFA subnet spec (ks, e, d, r) does not fit space '{space.name}'")
    config = config_from_spec(data)
    if "resolution" not in space.names:
        r = config.pop("resolution")
        if "r" in data and r != 224:
            raise ConfigError(f"space '{space.name}' has no variable 'resolution' (the network asks for r={r})")
    return config


def _from_hat(data: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    unknown = sorted(set(data) - set(HAT_KEYS))
    if unknown:
        raise ConfigError(f"HAT SubTransformer: unknown key '{unknown[0]}'")
    if "encoder_embed_dim" not in space.names:
        raise ConfigError(f"a HAT SubTransformer does not fit space '{space.name}'")
    config: dict[str, Any] = {}
    for key, (name, _) in HAT_KEYS.items():
        if key in data and not HAT_KEYS[key][1]:
            config[name] = _scalar(data[key], key)
    for key, (name, count) in HAT_KEYS.items():
        if count is None or key not in data:
            continue
        values = data[key]
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"HAT SubTransformer: '{key}' must be a list (one value per layer)")
        if count not in config:
            raise ConfigError(f"HAT SubTransformer: '{key}' needs "
                              f"'{count.replace('_', '-')}-subtransformer'")
        n = int(config[count])
        if len(values) < n:
            raise ConfigError(f"HAT SubTransformer: '{key}' has {len(values)} values for {n} layers")
        for i in range(n):  # values beyond the layer count are unused
            config[f"{name}_{i}"] = _scalar(values[i], f"{key}[{i}]")
    return config


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"HAT SubTransformer: '{where}' must be a single value, not {value!r}")
    return value
