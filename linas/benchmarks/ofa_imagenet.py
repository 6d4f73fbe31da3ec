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

The evaluator is vectorized (``evaluate_batch``: a chunk of networks in numpy at once, each
with the numbers ``evaluate_one`` gives it, to the bit; no per-network timeout), so the
runner stores a chunk in one archive transaction.

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
#: Rows of every matrix product of the predictor (a batch is cut into blocks of this many rows,
#: the last one padded with zeros; one network is a padded block of its own).
BLOCK_ROWS = 32


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
    stage's depth are ignored (OFA ignores them too). ``wid``, which OFA and DyNAS-T write as
    ``None`` for a MobileNetV3 of fixed width, may be present as ``None``.
    """
    unknown = set(spec) - {"ks", "e", "d", "r", "wid"}
    if unknown:
        raise ConfigError(f"OFA spec: unknown key(s) {sorted(unknown)}; expected ks, e, d, r")
    if spec.get("wid") is not None:
        raise ConfigError(f"OFA spec: 'wid' is {spec['wid']!r}; only a fixed-width supernet (wid None) is known")
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
        """The predictor's output for each row of ``features``.

        A BLAS product sums in an order that depends on the shape of the call, so a network's
        top-1 would change in its last bits with the batch it is measured in. Every product
        here has the same shape, ``BLOCK_ROWS`` rows (a batch in blocks, the last padded with
        zeros), so a network gets the same bits alone (:meth:`OfaImageNet.evaluate_one`) as in
        any batch, at any position (``tests/test_ofa_imagenet.py`` checks it), on a given
        machine and BLAS.
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        out = np.empty(len(x))
        for start in range(0, len(x), BLOCK_ROWS):
            rows = x[start:start + BLOCK_ROWS]
            h = np.zeros((BLOCK_ROWS, x.shape[1]))
            h[:len(rows)] = rows
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = h @ w + b
                if i < 3:
                    h = np.maximum(h, 0.0)
            out[start:start + len(rows)] = h[:len(rows), 0]
        return out

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


class _BatchTables:
    """Per-layer latencies, MACs and parameters, indexed by (resolution, block, kernel, expand
    ratio), for :meth:`OfaImageNet.evaluate_batch`. A block's layer depends on nothing else:
    every stage keeps its first (strided) block, so each block's input size and width are
    fixed by its position and the resolution."""

    def __init__(self, table: LatencyTable) -> None:
        self.resolutions = np.array(sorted(table.tables), dtype=np.int64)
        n_r = len(self.resolutions)
        shape = (n_r, N_BLOCKS, len(KERNELS), len(EXPANDS))
        self.blocks = np.zeros(shape)
        self.block_macs = np.zeros(shape, dtype=np.int64)
        self.block_params = np.zeros(shape[1:], dtype=np.int64)
        self.stem, self.first = np.zeros(n_r), np.zeros(n_r)
        self.head = np.zeros((n_r, 4))
        self.fixed_macs = np.zeros(n_r, dtype=np.int64)
        self.fixed_params = 0
        for ri, res in enumerate(self.resolutions):
            lut = table.tables[int(res)]
            for ki, kernel in enumerate(KERNELS):
                for ei, expand in enumerate(EXPANDS):
                    config = {"resolution": int(res), **{f"d_{s}": MAX_DEPTH for s in range(N_STAGES)},
                              **{f"ks_{i}": kernel for i in range(N_BLOCKS)},
                              **{f"e_{i}": expand for i in range(N_BLOCKS)}}
                    keys = layer_keys(config)
                    self.stem[ri], self.first[ri] = lut[keys[0]], lut[keys[1]]
                    self.head[ri] = [lut[key] for key in keys[2 + N_BLOCKS:]]
                    self.blocks[ri, :, ki, ei] = [lut[key] for key in keys[2:2 + N_BLOCKS]]
                    shapes = ofa_mbv3.layer_shapes(config, width_mult=WIDTH_MULT, n_classes=N_CLASSES)
                    fixed_macs, fixed_params = 0, 0
                    for layer in shapes:
                        p = layer.params() - (2 * layer.out_channels if layer.name == "feature_mix_layer" else 0)
                        if layer.name.startswith("blocks."):
                            i = int(layer.name.split(".")[1])
                            self.block_macs[ri, i, ki, ei] = layer.macs()
                            self.block_params[i, ki, ei] = p
                        else:
                            fixed_macs, fixed_params = fixed_macs + layer.macs(), fixed_params + p
                    self.fixed_macs[ri], self.fixed_params = fixed_macs, fixed_params


# --------------------------------------------------------------------------- the evaluator
@evaluators.register("ofa_imagenet")
class OfaImageNet(Evaluator):
    """OFA's predicted ImageNet top-1 and lookup-table latency (see the module docstring).

    Options: ``device`` (``note10``, the packaged tables, or a folder of
    ``{resolution}_lookup_table.yaml`` files in OFA's format).
    """

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"),
               Objective("macs", "min", "M"), Objective("params", "min", "M"))
    #: evaluate_batch measures a chunk in numpy at once (no per-network timeout).
    vectorized = True

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
        self._tables: _BatchTables | None = None  # built with the first evaluate_batch

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
        """A batch at once (:meth:`evaluate_batch`, no timeout)."""
        yield from enumerate(self.guarded_batch(configs))

    def _values(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """The values of every variable of each config (rows, in the space's order), or None
        unless each config names exactly the space's variables with values among their choices."""
        names = self.space.names
        if any(len(c) != len(names) for c in configs):
            return None
        try:
            raw = np.array([[c[name] for name in names] for c in configs], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            return None
        for j, name in enumerate(names):
            if not np.isin(raw[:, j], np.asarray(self.space.variable(name).choices, dtype=np.float64)).all():
                return None
        return raw.astype(np.int64)

    def evaluate_batch(self, configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Every network of ``configs`` in numpy at once, with the numbers of :meth:`evaluate_one`
        to the bit: the same predictor products (:meth:`AccuracyPredictor.predict_fraction`), the
        latency summed layer by layer in OFA's order, MACs and parameters as exact integers."""
        if not configs:
            return []
        if self._tables is None:
            self._tables = _BatchTables(self.table)
        t = self._tables
        values = self._values(configs)
        if values is None:  # some config is not a plain full one: canonical configs, as evaluate_one
            values = self._values([self._full(c) for c in configs])
        n_nets = len(configs)
        column = {name: j for j, name in enumerate(self.space.names)}
        ks = values[:, [column[f"ks_{i}"] for i in range(N_BLOCKS)]]
        es = values[:, [column[f"e_{i}"] for i in range(N_BLOCKS)]]
        ds = values[:, [column[f"d_{s}"] for s in range(N_STAGES)]]
        rs = values[:, column["resolution"]]
        k = np.searchsorted(KERNELS, ks)
        e = np.searchsorted(EXPANDS, es)
        r = np.searchsorted(t.resolutions, rs)
        if ((np.asarray(KERNELS)[np.minimum(k, 2)] != ks).any() or (np.asarray(EXPANDS)[np.minimum(e, 2)] != es).any()
                or (t.resolutions[np.minimum(r, len(t.resolutions) - 1)] != rs).any()):
            raise ValueError("a kernel, expand ratio or resolution outside the tables")
        active = np.arange(MAX_DEPTH)[None, None, :] < ds[:, :, None]  # (n, stages, blocks of a stage)
        active = active.reshape(n_nets, N_BLOCKS)
        rows = np.arange(n_nets)
        # top-1: OFA's features, then the predictor
        x = np.zeros((n_nets, 128))
        for i in range(N_BLOCKS):
            on = rows[active[:, i]]
            x[on, 3 * i + k[on, i]] = 1.0
            x[on, 60 + 3 * i + e[on, i]] = 1.0
        x[rows, 120 + (rs - 112) // 16] = 1.0
        top1 = 100.0 * self.predictor.predict_fraction(x)
        # latency: stem, first block, each active block in order, then the head, summed in that order
        latency = 0.0 + t.stem[r]
        latency = latency + t.first[r]
        for i in range(N_BLOCKS):
            latency = latency + np.where(active[:, i], t.blocks[r, i, k[:, i], e[:, i]], 0.0)
        for j in range(t.head.shape[1]):
            latency = latency + t.head[r, j]
        n_macs = t.fixed_macs[r] + np.where(active, t.block_macs[r[:, None], np.arange(N_BLOCKS), k, e], 0).sum(axis=1)
        n_params = t.fixed_params + np.where(active, t.block_params[np.arange(N_BLOCKS), k, e], 0).sum(axis=1)
        return [Outcome({"top1": float(top1[n]), "latency": float(latency[n]), "macs": int(n_macs[n]) / 1e6,
                         "params": int(n_params[n]) / 1e6}) for n in range(n_nets)]

