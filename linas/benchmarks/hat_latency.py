"""Real-device latency of HAT SubTransformers: HAT's latency predictor, re-implemented.

HAT (Wang et al., ACL'20) measured 2,000 SubTransformers per task on a Raspberry Pi 4
(ARM Cortex-A72), an Intel Xeon E5-2640 and an Nvidia TITAN Xp, and fitted one latency
predictor per device and task. Those measurements ship with linas
(``linas/data/hat_latency``); this module fits the same predictor to them, in numpy
(no torch), as HAT's ``latency_predictor.py`` does:

- **features** (HAT's ``utils.get_config_features``): encoder embed dim, encoder layers,
  mean encoder FFN dim, mean encoder heads, decoder embed dim, decoder layers, mean decoder
  FFN dim, mean decoder self-attention heads, mean encoder-decoder heads, mean number of
  encoder layers attended (``decoder_arbitrary_ende_attn`` -1/1/2 -> 1/2/3), means over
  the active layers; divided by ``FEATURE_NORM``;
- **target**: encoder + decoder mean latency (ms) divided by the device's ``lat_norm``
  (5000 on the Raspberry Pi, 300 on the Xeon, 200 on the TITAN Xp);
- **model**: ``Linear(10, 400)``, ReLU, three ``Linear(400, 400)``, ReLU each,
  ``Linear(400, 1)``, initialised as torch's ``nn.Linear`` (uniform in +-1/sqrt(fan_in));
- **training**: mean squared error, Adam (lr 1e-5, betas 0.9/0.999, eps 1e-8), 5,000 steps
  of 128 rows drawn without replacement from the training rows.

HAT trains on 80 % of the rows; :func:`cross_validate` fits on 4 of 5 folds (the same 80 %)
and scores the fifth. Fitting is deterministic for a seed (numpy's generator, float32).

Predictors fitted once by ``experiments/fit_hat_latency.py`` ship in
``linas/data/hat_latency/predictors`` (WMT'14 En-De, the three devices; weights stored as
float16); another task or seed is fitted at first use and cached in
``~/.cache/linas/hat_latency`` (``$LINAS_CACHE/hat_latency``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import PositiveInt

from linas import registry
from linas.data import data_path
from linas.errors import ConfigError
from linas.evaluator import Evaluator, Outcome, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace

FEATURE_NAMES = ("encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_avg",
                 "encoder_self_attention_heads_avg", "decoder_embed_dim", "decoder_layer_num",
                 "decoder_ffn_embed_dim_avg", "decoder_self_attention_heads_avg",
                 "decoder_ende_attention_heads_avg", "decoder_arbitrary_ende_attn_avg")
FEATURE_NORM = np.array([640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2], dtype=np.float64)
# device -> (HAT's file infix, lat_norm of its latency_predictor config)
DEVICES = {"raspberrypi": ("cpu", 5000.0), "xeon": ("cpu", 300.0), "titanxp": ("gpu", 200.0)}
TASKS = ("wmt14ende", "wmt14enfr", "wmt19ende", "iwslt14deen")
HIDDEN_DIM, HIDDEN_LAYERS = 400, 3
TRAIN_STEPS, BATCH_SIZE, LEARNING_RATE = 5000, 128, 1e-5
DEFAULT_SEED = 0


def dataset_file(task: str, device: str) -> Path:
    if device not in DEVICES:
        raise ConfigError(f"unknown latency device '{device}'; known: {', '.join(DEVICES)}")
    if task not in TASKS:
        raise ConfigError(f"unknown HAT task '{task}'; known: {', '.join(TASKS)}")
    path = data_path("hat_latency", f"{task}_{DEVICES[device][0]}_{device}_all.csv.gz")
    if not path.is_file():
        available = sorted(p.name for p in data_path("hat_latency").glob("*_all.csv.gz"))
        raise ConfigError(f"HAT measured no latency of '{task}' on '{device}'; tables: {', '.join(available)}")
    return path


def read_dataset(task: str, device: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, 10), latency in ms (n,))``: HAT's rows in file order, encoder + decoder."""
    raw = gzip.decompress(dataset_file(task, device).read_bytes()).decode()
    header = raw.split("\n", 1)[0].split(",")
    if tuple(header[:10]) != FEATURE_NAMES:
        raise ConfigError(f"{task} {device}: unexpected columns {header[:10]}")
    table = np.loadtxt(io.StringIO(raw), delimiter=",", skiprows=1, dtype=np.float64)
    col = {name: i for i, name in enumerate(header)}
    latency = table[:, col["latency_mean_encoder"]] + table[:, col["latency_mean_decoder"]]
    return table[:, :10], latency


# --------------------------------------------------------------------------- features
def ende_layers(value: int) -> int:
    """HAT's ``decoder_arbitrary_ende_attn`` (-1, 1, 2) -> encoder layers attended (1, 2, 3)."""
    mapping = {-1: 1, 1: 2, 2: 3}
    if int(value) not in mapping:
        raise ConfigError(f"decoder_arbitrary_ende_attn must be -1, 1 or 2, not {value!r}")
    return mapping[int(value)]


def hat_features(encoder_embed_dim: int, encoder_ffn: Sequence[int], encoder_heads: Sequence[int],
                 decoder_embed_dim: int, decoder_ffn: Sequence[int], decoder_self_heads: Sequence[int],
                 decoder_ende_heads: Sequence[int], decoder_arbitrary_ende_attn: Sequence[int]) -> np.ndarray:
    """HAT's 10 features of one SubTransformer (per-layer lists hold the active layers only)."""
    n_enc, n_dec = len(encoder_ffn), len(decoder_ffn)
    return np.array([encoder_embed_dim, n_enc, np.mean(encoder_ffn), np.mean(encoder_heads),
                     decoder_embed_dim, n_dec, np.mean(decoder_ffn), np.mean(decoder_self_heads),
                     np.mean(decoder_ende_heads), np.mean([ende_layers(v) for v in decoder_arbitrary_ende_attn])],
                    dtype=np.float64)


def config_features(config: Mapping[str, Any]) -> np.ndarray:
    """HAT's 10 features of a configuration of a ``hat_*`` space (variable names of
    :mod:`linas.spaces.hat_transformer`)."""
    n_enc, n_dec = int(config["encoder_layer_num"]), int(config["decoder_layer_num"])
    return hat_features(
        int(config["encoder_embed_dim"]),
        [config[f"encoder_ffn_embed_dim_{i}"] for i in range(n_enc)],
        [config[f"encoder_self_attention_heads_{i}"] for i in range(n_enc)],
        int(config["decoder_embed_dim"]),
        [config[f"decoder_ffn_embed_dim_{i}"] for i in range(n_dec)],
        [config[f"decoder_self_attention_heads_{i}"] for i in range(n_dec)],
        [config[f"decoder_ende_attention_heads_{i}"] for i in range(n_dec)],
        [config[f"decoder_arbitrary_ende_attn_{i}"] for i in range(n_dec)])


# --------------------------------------------------------------------------- the MLP
@dataclass
class LatencyMLP:
    """HAT's latency predictor: weights and the normalization it was trained with."""

    weights: list[np.ndarray]  # (in, out) matrices
    biases: list[np.ndarray]
    lat_norm: float
    feature_norm: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Latency in ms of rows of HAT's 10 (raw) features."""
        h = np.atleast_2d(np.asarray(features, dtype=np.float64)) / self.feature_norm
        h = h.astype(np.float32)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < last:
                np.maximum(h, 0, out=h)
        return h[:, 0].astype(np.float64) * self.lat_norm

    def half(self) -> LatencyMLP:
        """The same predictor with its weights rounded to float16 (how shipped predictors are stored)."""
        return LatencyMLP([w.astype(np.float16).astype(np.float32) for w in self.weights],
                          [b.astype(np.float16).astype(np.float32) for b in self.biases],
                          self.lat_norm, self.feature_norm.copy())

    def save(self, path: str | Path, dtype: Any = np.float32, **meta: Any) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": w.astype(dtype) for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b.astype(dtype) for i, b in enumerate(self.biases)})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, lat_norm=np.float64(self.lat_norm), feature_norm=self.feature_norm,
                                **arrays, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyMLP:
        with np.load(path) as z:
            n = sum(1 for k in z.files if re.fullmatch(r"w\d+", k))
            return cls([z[f"w{i}"].astype(np.float32) for i in range(n)],
                       [z[f"b{i}"].astype(np.float32) for i in range(n)],
                       float(z["lat_norm"]), z["feature_norm"].astype(np.float64))


def _torch_linear_init(rng: np.random.Generator, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    # torch.nn.Linear: kaiming_uniform(a=sqrt(5)) on the weight and U(+-1/sqrt(fan_in)) on the
    # bias, i.e. both uniform in +-1/sqrt(fan_in).
    bound = 1.0 / np.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(np.float32)
    b = rng.uniform(-bound, bound, size=fan_out).astype(np.float32)
    return w, b


def fit_mlp(features: np.ndarray, latency: np.ndarray, lat_norm: float, seed: int = DEFAULT_SEED,
            steps: int = TRAIN_STEPS, batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE,
            hidden_dim: int = HIDDEN_DIM, hidden_layers: int = HIDDEN_LAYERS) -> LatencyMLP:
    """Train HAT's predictor on ``features`` (raw, n x 10) and ``latency`` (ms).

    One BLAS thread: the matrices are small, and more threads only wait for each other
    (several times slower on a busy machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_mlp(features, latency, lat_norm, seed, steps, batch_size, lr, hidden_dim, hidden_layers)


def _fit_mlp(features: np.ndarray, latency: np.ndarray, lat_norm: float, seed: int, steps: int,
             batch_size: int, lr: float, hidden_dim: int, hidden_layers: int) -> LatencyMLP:
    rng = np.random.default_rng(seed)
    x = (np.asarray(features, dtype=np.float64) / FEATURE_NORM).astype(np.float32)
    y = (np.asarray(latency, dtype=np.float64) / lat_norm).astype(np.float32)
    if len(x) < batch_size:
        raise ConfigError(f"HAT latency predictor: {len(x)} rows, fewer than a batch of {batch_size}")
    dims = [x.shape[1]] + [hidden_dim] * (hidden_layers + 1) + [1]
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        params.extend(_torch_linear_init(rng, fan_in, fan_out))
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n_layers = len(dims) - 1
    for step in range(1, steps + 1):
        idx = rng.choice(len(x), size=batch_size, replace=False)
        xb, yb = x[idx], y[idx]
        acts = [xb]
        h = xb
        for i in range(n_layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        # d(mean squared error)/d(prediction)
        grad = (2.0 / batch_size) * (h[:, 0] - yb)[:, None].astype(np.float32)
        grads: list[np.ndarray] = [None] * len(params)  # type: ignore[list-item]
        for i in reversed(range(n_layers)):
            grads[2 * i] = acts[i].T @ grad
            grads[2 * i + 1] = grad.sum(axis=0)
            if i > 0:
                grad = (grad @ params[2 * i].T) * (acts[i] > 0)
        c1, c2 = 1 - beta1 ** step, 1 - beta2 ** step
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= beta1
            mi += (1 - beta1) * g
            vi *= beta2
            vi += (1 - beta2) * g * g
            p -= (lr / c1) * mi / (np.sqrt(vi / c2) + eps)
    return LatencyMLP(params[0::2], params[1::2], float(lat_norm), FEATURE_NORM.copy())


# --------------------------------------------------------------------------- fitted predictors
def shipped_path(task: str, device: str, seed: int = DEFAULT_SEED) -> Path:
    return data_path("hat_latency", "predictors", f"{task}_{device}_seed{seed}.npz")


def _cache_path(task: str, device: str, seed: int) -> Path:
    digest = hashlib.sha256(dataset_file(task, device).read_bytes()).hexdigest()[:12]
    root = Path(os.environ.get("LINAS_CACHE", Path.home() / ".cache" / "linas")).expanduser()
    return root / "hat_latency" / f"{task}_{device}_seed{seed}_{digest}.npz"


_LOADED: dict[tuple[str, str, int], LatencyMLP] = {}


def load_predictor(task: str = "wmt14ende", device: str = "raspberrypi", seed: int = DEFAULT_SEED) -> LatencyMLP:
    """The predictor of ``device`` and ``task`` fitted on all of HAT's rows with ``seed``:
    the shipped one, else the cached one, else fitted now (about a minute) and cached
    (float16 weights, as shipped ones)."""
    key = (task, device, int(seed))
    if key in _LOADED:
        return _LOADED[key]
    lat_norm = DEVICES[device][1] if device in DEVICES else None
    shipped = shipped_path(task, device, seed)
    if shipped.is_file():
        model = LatencyMLP.load(shipped)
    else:
        cached = _cache_path(task, device, seed)
        if cached.is_file():
            model = LatencyMLP.load(cached)
        else:
            x, y = read_dataset(task, device)
            model = fit_mlp(x, y, lat_norm, seed=seed, steps=TRAIN_STEPS).half()
            model.save(cached, dtype=np.float16)
    _LOADED[key] = model
    return model


def cross_validate(task: str, device: str, folds: int = 5, seed: int = DEFAULT_SEED,
                   steps: int = TRAIN_STEPS, half: bool = True) -> dict[str, Any]:
    """``folds``-fold cross-validation of HAT's predictor on one device and task.

    Fold ``k`` is fitted with seed ``seed + k``. Returns Kendall tau, mean absolute percentage error, RMSE (ms) and R^2 of the
    out-of-fold predictions of every row, and the per-fold values.
    """
    from scipy.stats import kendalltau

    x, y = read_dataset(task, device)
    order = np.random.default_rng(seed).permutation(len(x))
    parts = np.array_split(order, folds)
    predicted = np.empty_like(y)
    per_fold = []
    for k, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        model = fit_mlp(x[train], y[train], DEVICES[device][1], seed=seed + k, steps=steps)
        predicted[test] = (model.half() if half else model).predict(x[test])
        per_fold.append(_scores(y[test], predicted[test], kendalltau))
    out = _scores(y, predicted, kendalltau)
    out.update({"n": int(len(y)), "folds": folds, "per_fold": per_fold})
    return out


def _scores(y: np.ndarray, p: np.ndarray, kendalltau) -> dict[str, float]:
    return {"kendall_tau": float(kendalltau(y, p).statistic),
            "mape": float(np.mean(np.abs(p - y) / y)),
            "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))),
            "r2": float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))}


# --------------------------------------------------------------------------- the evaluator
class DeviceLatency:
    """Predicted latency (ms) on one of HAT's devices of configs of a ``hat_*`` space.

    This is what an evaluator with a ``latency_device`` option calls::

        latency = DeviceLatency("raspberrypi")          # WMT'14 En-De predictor, seed 0
        latency(config)                                 # ms, one config of hat_wmt14_ende
        latency.batch(configs)                          # ms, an array
    """

    def __init__(self, device: str = "raspberrypi", task: str = "wmt14ende", seed: int = DEFAULT_SEED) -> None:
        dataset_file(task, device)  # one-line error for an unknown device or task
        self.device, self.task, self.seed = device, task, int(seed)
        self.model = load_predictor(task, device, seed)
        digest = hashlib.sha256(b"".join(w.tobytes() for w in self.model.weights)).hexdigest()[:12]
        self.identity = f"hat_latency:{task}:{device}:seed{seed}:{digest}"

    def __call__(self, config: Mapping[str, Any]) -> float:
        return float(self.model.predict(config_features(config)[None])[0])

    def batch(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.model.predict(np.array([config_features(c) for c in configs]).reshape(-1, 10))


@evaluators.register("hat_device_latency")
class HatDeviceLatency(Evaluator):
    """Latency of HAT SubTransformers on a real device (HAT's measurements, HAT's predictor),
    with analytic MACs and params; no BLEU (pair it with a supernet for that).

    Options: ``latency_device`` (``raspberrypi``, ``xeon`` or ``titanxp``), ``task`` (whose
    measurements: ``wmt14ende`` by default), ``seed`` (of the predictor's fit), and
    ``vocab_size``/``qkv_dim`` of the MACs and params count (HAT's WMT'14 En-De model:
    a 32K shared vocabulary, Q/K/V width 512; MACs of a 30-token source and target).
    """

    metrics = (Objective("latency", "min", "ms"), Objective("macs", "min", "M"), Objective("params", "min", "M"))

    class Options(registry.Options):
        latency_device: str = "raspberrypi"  # raspberrypi, xeon or titanxp
        task: str = "wmt14ende"  # whose measurements: wmt14ende, wmt14enfr, wmt19ende, iwslt14deen
        seed: int = DEFAULT_SEED  # of the predictor's fit
        vocab_size: PositiveInt = 32768
        qkv_dim: PositiveInt = 512

    def __init__(self, space: SearchSpace, latency_device: str = "raspberrypi", task: str = "wmt14ende",
                 seed: int = DEFAULT_SEED, vocab_size: int = 32768, qkv_dim: int = 512) -> None:
        super().__init__(space)
        needed = {"encoder_embed_dim", "decoder_embed_dim", "encoder_layer_num", "decoder_layer_num"}
        if not needed <= set(space.names):
            raise ConfigError(f"evaluator 'hat_device_latency' needs a HAT space (hat_wmt14_ende), "
                              f"not '{space.name}'")
        if vocab_size < 1 or qkv_dim < 1:
            raise ConfigError("evaluator 'hat_device_latency': vocab_size and qkv_dim must be positive")
        self.latency = DeviceLatency(latency_device, task, seed)
        self.vocab_size, self.qkv_dim = int(vocab_size), int(qkv_dim)
        self._identity = f"hat_device_latency:{self.latency.identity}:vocab={vocab_size}:qkv={qkv_dim}"

    @property
    def identity(self) -> str:
        return self._identity

    def _cost(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
        from supernets.transformer.arch import arch_of

        full = self.space.to_config(self.space.from_config(config))
        arch = arch_of(self.space, full, self.vocab_size, self.qkv_dim)
        return full, {"macs": arch.macs() / 1e6, "params": arch.params() / 1e6}

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        full, out = self._cost(config)
        out["latency"] = self.latency(full)
        return out

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None):
        """A batch at once: one forward pass of the predictor for the whole batch."""
        try:
            costs = [self._cost(c) for c in configs]
        except ConfigError:
            yield from super().evaluate(configs, timeout)
            return
        latency = self.latency.batch([full for full, _ in costs])
        for i, (_, out) in enumerate(costs):
            yield i, Outcome({"latency": float(latency[i]), **out}, None, 0.0)
