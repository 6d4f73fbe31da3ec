"""ImageNet top-1 and Note10 latency of OFA MobileNetV3 w1.2 subnets, from OFA's published files.

Once-for-All (Cai et al., ICLR'20) released, with its tutorial, an accuracy predictor of
ImageNet top-1 for the subnets of its w1.2 MobileNetV3 supernet and per-layer latency
lookup tables measured on a Samsung Note10. Both ship with linas (``linas/data/ofa``), so
this evaluator gives a real ImageNet landscape offline, in numpy (no torch):

- ``top1`` (%): OFA's predictor, ``Linear(128,400) ReLU Linear(400,400) ReLU
  Linear(400,400) ReLU Linear(400,1)``, times 100. Its 128 features, as OFA's
  ``AccuracyPredictor.spec2feats``: for each of the 20 blocks a one-hot of the kernel in
  (3, 5, 7), then for each block a one-hot of the expand ratio in (3, 4, 6), all zero for
  a block beyond its stage's depth; then a one-hot of ``(resolution - 112) // 16`` over 8.
- ``latency`` (ms): the sum of the table entries of the subnet's layers, as OFA's
  ``LatencyEstimator.predict_network_latency_given_spec`` builds their keys: the first
  conv (``Conv``, 3 -> 24 channels, stride 2), the first block (``expanded_conv`` 24 -> 24,
  expand 24, kernel 3, stride 1, identity skip, no SE, ReLU), every active block (widths
  32, 48, 96, 136, 192, strides 2, 2, 2, 1, 2, the first block of a stage strided and
  without skip, the others with it; SE in stages 2, 4, 5; h-swish in stages 3-5; expand
  ``round(in_channels * e)``), then ``Conv_1`` (192 -> 1152), ``AvgPool2D``, ``Conv_2``
  (1152 -> 1536) and ``Logits`` (1536 -> 1000). The table is the one of the subnet's
  resolution (``{resolution}_lookup_table.yaml``).
- ``macs`` and ``params`` (M): counted analytically from the w1.2 layer shapes at the
  subnet's resolution (:func:`linas.spaces.ofa_mbv3.layer_shapes`, 1000 classes).

``tests/test_ofa_imagenet.py`` checks both against OFA's own code on 1,200 random subnets.

    evaluator: {name: ofa_imagenet, options: {device: note10}}   # or a folder of tables
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from linas import registry
from linas.data import data_path
from linas.errors import ConfigError
from linas.evaluator import Evaluator, Outcome, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace
from linas.spaces import ofa_mbv3

WIDTH_MULT = 1.2
KERNELS, EXPANDS, DEPTHS = (3, 5, 7), (3, 4, 6), (2, 3, 4)
N_BLOCKS, MAX_DEPTH, N_STAGES = 20, 4, 5
STEM = ofa_mbv3.make_divisible(ofa_mbv3.STEM_WIDTH * WIDTH_MULT)  # 24
STAGE_WIDTHS = tuple(ofa_mbv3.make_divisible(w * WIDTH_MULT) for w in ofa_mbv3.STAGE_WIDTHS)  # 32 48 96 136 192
FINAL_EXPAND = ofa_mbv3.make_divisible(ofa_mbv3.FINAL_EXPAND_WIDTH * WIDTH_MULT)  # 1152
LAST_CHANNEL = ofa_mbv3.make_divisible(ofa_mbv3.LAST_CHANNEL * WIDTH_MULT)  # 1536
N_CLASSES = 1000
PREDICTOR_FILE = ("ofa", "acc_predictor.npz")


def predictor_resolutions() -> range:
    """Resolutions OFA's predictor encodes: ``(r - 112) // 16`` in 0..7."""
    return range(112, 112 + 8 * 16)


# --------------------------------------------------------------------------- OFA's native format
def ofa_spec(config: Mapping[str, Any]) -> dict[str, list[int]]:
    """OFA's ``{"ks": [20], "e": [20], "d": [5], "r": [1]}`` of a config of the space."""
    return {"ks": [int(config[f"ks_{i}"]) for i in range(N_BLOCKS)],
            "e": [int(config[f"e_{i}"]) for i in range(N_BLOCKS)],
            "d": [int(config[f"d_{s}"]) for s in range(N_STAGES)],
            "r": [int(config.get("resolution", 224))]}


def config_from_spec(spec: Mapping[str, Any]) -> dict[str, int]:
    """The config (variable names of ``ofa_imagenet``) of OFA's native spec.

    ``r`` may be an int or a list of one int; kernels and expand ratios of blocks beyond a
    stage's depth are ignored (OFA ignores them too).
    """
    unknown = set(spec) - {"ks", "e", "d", "r"}
    if unknown:
        raise ConfigError(f"OFA spec: unknown key(s) {sorted(unknown)}; expected ks, e, d, r")
    lengths = {"ks": N_BLOCKS, "e": N_BLOCKS, "d": N_STAGES}
    for key, n in lengths.items():
        value = spec.get(key)
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise ConfigError(f"OFA spec: '{key}' must be a list of {n} integers")
    r = spec.get("r", 224)
    if isinstance(r, (list, tuple)):
        if len(r) != 1:
            raise ConfigError("OFA spec: 'r' must be one resolution (an int or a list of one int)")
        r = r[0]
    config: dict[str, int] = {}
    for s, d in enumerate(spec["d"]):
        config[f"d_{s}"] = _int(d, f"d[{s}]")
        for j in range(MAX_DEPTH):
            i = s * MAX_DEPTH + j
            if j < config[f"d_{s}"]:
                config[f"ks_{i}"] = _int(spec["ks"][i], f"ks[{i}]")
                config[f"e_{i}"] = _int(spec["e"][i], f"e[{i}]")
    config["resolution"] = _int(r, "r")
    return config


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"OFA spec: {where} must be an integer, not {value!r}")
    return int(value)


# --------------------------------------------------------------------------- accuracy predictor
class AccuracyPredictor:
    """OFA's ImageNet top-1 predictor of w1.2 subnets, in numpy (float64 arithmetic)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else data_path(*PREDICTOR_FILE)
        with np.load(self.path) as z:
            self.weights = [z[f"w{i}"].astype(np.float64) for i in range(4)]
            self.biases = [z[f"b{i}"].astype(np.float64) for i in range(4)]
            self.source_sha256 = str(z["source_sha256"])

    @staticmethod
    def features(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The 128 features of each config (OFA's ``spec2feats``)."""
        x = np.zeros((len(configs), 128))
        for row, c in enumerate(configs):
            for s in range(N_STAGES):
                for j in range(int(c[f"d_{s}"])):
                    i = s * MAX_DEPTH + j
                    x[row, 3 * i + KERNELS.index(int(c[f"ks_{i}"]))] = 1.0
                    x[row, 60 + 3 * i + EXPANDS.index(int(c[f"e_{i}"]))] = 1.0
            x[row, 120 + (int(c.get("resolution", 224)) - 112) // 16] = 1.0
        return x

    def predict_fraction(self, features: np.ndarray) -> np.ndarray:
        h = np.atleast_2d(features)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < 3:
                h = np.maximum(h, 0.0)
        return h[:, 0]

    def top1(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted ImageNet top-1 in % of each config."""
        return 100.0 * self.predict_fraction(self.features(configs))


# --------------------------------------------------------------------------- latency tables
def table_dir(device: str) -> Path:
    """The folder of ``{resolution}_lookup_table.yaml`` files of ``device``: a packaged
    device name (``note10``) or a folder path."""
    packaged = data_path("ofa", f"latency_table_{device}")
    if packaged.is_dir():
        return packaged
    path = Path(device).expanduser()
    if path.is_dir():
        return path
    known = sorted(p.name.removeprefix("latency_table_") for p in data_path("ofa").glob("latency_table_*"))
    raise ConfigError(f"ofa_imagenet: device '{device}' is neither a packaged table ({', '.join(known)}) "
                      "nor a folder of {resolution}_lookup_table.yaml files")


def _yaml_load(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def layer_keys(config: Mapping[str, Any]) -> list[str]:
    """Lookup-table keys of every layer of the subnet, in OFA's order."""
    r = int(config.get("resolution", 224))
    size = (r + 1) // 2
    keys = [f"Conv-input:{_shape(r, r, 3)}-output:{_shape(size, size, STEM)}",
            _block_key(size, size, STEM, STEM, STEM, 3, 1, True, False, False)]
    in_ch = STEM
    for s in range(N_STAGES):
        for j in range(int(config[f"d_{s}"])):
            i = s * MAX_DEPTH + j
            stride = ofa_mbv3.STAGE_STRIDES[s] if j == 0 else 1
            out_size = int((size - 1) / stride + 1)
            out_ch = STAGE_WIDTHS[s]
            mid = round(in_ch * int(config[f"e_{i}"]))
            keys.append(_block_key(size, out_size, in_ch, out_ch, mid, int(config[f"ks_{i}"]), stride, j > 0,
                                   ofa_mbv3.STAGE_SE[s], ofa_mbv3.STAGE_ACTS[s] == "h_swish"))
            size, in_ch = out_size, out_ch
    keys += [f"Conv_1-input:{_shape(size, size, in_ch)}-output:{_shape(size, size, FINAL_EXPAND)}",
             f"AvgPool2D-input:{_shape(size, size, FINAL_EXPAND)}-output:{_shape(1, 1, FINAL_EXPAND)}",
             f"Conv_2-input:{_shape(1, 1, FINAL_EXPAND)}-output:{_shape(1, 1, LAST_CHANNEL)}",
             f"Logits-input:{_shape(1, 1, LAST_CHANNEL)}-output:{N_CLASSES}"]
    return keys


def _block_key(size: int, out_size: int, in_ch: int, out_ch: int, mid: int, kernel: int, stride: int,
               skip: bool, se: bool, hswish: bool) -> str:
    return (f"expanded_conv-input:{_shape(size, size, in_ch)}-output:{_shape(out_size, out_size, out_ch)}"
            f"-expand:{mid}-kernel:{kernel}-stride:{stride}-idskip:{int(skip)}-se:{int(se)}-hs:{int(hswish)}")


def all_layer_keys(resolution: int) -> set[str]:
    """Every key a subnet at ``resolution`` can look up (each kernel, expand ratio and position)."""
    keys: set[str] = set()
    for k in KERNELS:
        for e in EXPANDS:
            config = {"resolution": resolution, **{f"d_{s}": MAX_DEPTH for s in range(N_STAGES)},
                      **{f"ks_{i}": k for i in range(N_BLOCKS)}, **{f"e_{i}": e for i in range(N_BLOCKS)}}
            keys.update(layer_keys(config))
    return keys


class LatencyTable:
    """Per-layer latency tables of one device, one file per resolution."""

    def __init__(self, device: str = "note10", resolutions: Sequence[int] = (160, 176, 192, 208, 224)) -> None:
        self.device = device
        self.folder = table_dir(device)
        self.tables: dict[int, dict[str, float]] = {}
        digest = hashlib.sha256()
        for r in sorted({int(x) for x in resolutions}):
            path = self.folder / f"{r}_lookup_table.yaml"
            if not path.is_file():
                raise ConfigError(f"ofa_imagenet: no latency table for resolution {r} ({path})")
            text = path.read_text()
            digest.update(text.encode())
            try:
                entries = _yaml_load(text)
                table = {str(k): float(v["mean"]) for k, v in entries.items()}
            except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
                raise ConfigError(f"ofa_imagenet: {path} is not a lookup table ({{key: {{mean: ms}}}})") from None
            missing = sorted(all_layer_keys(r) - set(table))
            if missing:
                raise ConfigError(f"ofa_imagenet: {path} has no entry '{missing[0]}' "
                                  f"({len(missing)} layer key(s) missing)")
            self.tables[r] = table
        self.sha256 = digest.hexdigest()

    def latency(self, config: Mapping[str, Any]) -> float:
        """Latency in ms of one subnet: the sum of its layers' means."""
        r = int(config.get("resolution", 224))
        if r not in self.tables:
            raise ConfigError(f"ofa_imagenet: no latency table for resolution {r} in {self.folder}")
        table = self.tables[r]
        total = 0.0
        for key in layer_keys(config):
            total += table[key]
        return total


def macs(config: Mapping[str, Any]) -> float:
    """Multiply-accumulates (M) of the w1.2 subnet at its resolution."""
    return ofa_mbv3.macs(config, width_mult=WIDTH_MULT) / 1e6


def params(config: Mapping[str, Any]) -> float:
    """Parameters (M) of the w1.2 subnet."""
    return ofa_mbv3.params(config, width_mult=WIDTH_MULT) / 1e6


# --------------------------------------------------------------------------- the evaluator
@evaluators.register("ofa_imagenet")
class OfaImageNet(Evaluator):
    """OFA's predicted ImageNet top-1 and lookup-table latency (see the module docstring).

    Options: ``device`` (``note10``, the packaged tables, or a folder of
    ``{resolution}_lookup_table.yaml`` files in OFA's format).
    """

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"),
               Objective("macs", "min", "M"), Objective("params", "min", "M"))

    class Options(registry.Options):
        device: str = "note10"  # a packaged table set, or a folder of {resolution}_lookup_table.yaml

    def __init__(self, space: SearchSpace, device: str = "note10") -> None:
        super().__init__(space)
        needed = ({f"ks_{i}" for i in range(N_BLOCKS)} | {f"e_{i}" for i in range(N_BLOCKS)}
                  | {f"d_{s}" for s in range(N_STAGES)} | {"resolution"})
        if set(space.names) != needed:
            raise ConfigError(f"evaluator 'ofa_imagenet' needs the 46 variables of the ofa_imagenet space "
                              f"(ks_i, e_i, d_s, resolution), not space '{space.name}'")
        choices = {name: tuple(space.variable(name).choices) for name in ("ks_0", "e_0", "d_0")}
        if not (set(choices["ks_0"]) <= set(KERNELS) and set(choices["e_0"]) <= set(EXPANDS)
                and set(choices["d_0"]) <= set(DEPTHS)):
            raise ConfigError("evaluator 'ofa_imagenet': kernels, expand ratios and depths must be among "
                              f"{KERNELS}, {EXPANDS} and {DEPTHS}")
        resolutions = [int(r) for r in space.variable("resolution").choices]
        bad = [r for r in resolutions if r not in predictor_resolutions()]
        if bad:
            raise ConfigError(f"evaluator 'ofa_imagenet': resolution {bad[0]} is outside OFA's predictor "
                              "(112 to 239)")
        self.predictor = AccuracyPredictor()
        self.table = LatencyTable(device, resolutions)
        self._identity = (f"ofa_imagenet:predictor={self.predictor.source_sha256[:12]}:"
                          f"lut={self.table.sha256[:12]}")

    @property
    def identity(self) -> str:
        return self._identity

    def _full(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return self.space.to_config(self.space.from_config(config))

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        c = self._full(config)
        return {"top1": float(self.predictor.top1([c])[0]), "latency": self.table.latency(c),
                "macs": macs(c), "params": params(c)}

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None
                 ) -> Iterator[tuple[int, Outcome]]:
        """A batch at once: one matrix product for every top-1 of the batch."""
        try:
            full = [self._full(c) for c in configs]
        except ConfigError:
            yield from super().evaluate(configs, timeout)
            return
        top1 = self.predictor.top1(full)
        for i, c in enumerate(full):
            yield i, Outcome({"top1": float(top1[i]), "latency": self.table.latency(c),
                              "macs": macs(c), "params": params(c)}, None, 0.0)
