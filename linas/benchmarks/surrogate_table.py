"""Tables and exact metrics for the ``surrogate`` evaluator.

**A table as the source.** ``source: measured.csv`` (or ``.csv.gz``) fits the surrogate to
a CSV instead of an evaluation cache: one row per measured network, its metrics in
columns named as the metrics (or DyNAS-T's headers, see :mod:`linas.importing`), the
network either in one column (``config_column``, or a column named ``Sub-network``,
``config``, ``subnet``, ``network`` or ``arch``: JSON or a Python literal, in any format of
:mod:`linas.networks`) or in columns named as the space's variables. Rows marked
``status: failed`` or missing a metric are left out; a network measured several times is
fitted to the mean of its measurements.

**Exact metrics.** ``exact: [macs, params]`` computes those metrics from the network's
shape instead of predicting them (:func:`exact_metrics`): OFA MobileNetV3 spaces count
them from the layer shapes (``width_mult`` 1.2 for ``ofa_imagenet``, 1.0 for ``ofa_mbv3``),
HAT spaces from the SubTransformer's widths (``vocab_size`` and ``qkv_dim``; defaults for
``hat_wmt14_ende`` are HAT's 32K vocabulary and Q/K/V width 512). ``exact_options``
overrides those parameters.

    evaluator:
      name: surrogate
      options:
        source: dynast_results.csv
        metrics: {top1: max, latency: min}     # predicted
        exact: [macs, params]                  # counted
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from linas.errors import ConfigError
from linas.space import SearchSpace

EXACT = ("macs", "params")
HAT_DEFAULTS = {"hat_wmt14_ende": {"vocab_size": 32768, "qkv_dim": 512},
                "hat_cpu": {"vocab_size": 8192, "qkv_dim": 192}}


def is_table(source: str | Path) -> bool:
    return str(source).lower().endswith((".csv", ".csv.gz"))


def read_table(path: str | Path, space: SearchSpace, metrics: Sequence[str],
               config_column: str | None = None) -> tuple[str, list[tuple[str, dict[str, float]]]]:
    """``(identity of the table, [(config key, metrics), ...])``, one entry per distinct network."""
    import csv

    from linas.importing import CONFIG_COLUMNS, DYNAST_HEADERS, _from_columns
    from linas.networks import parse_network_text, to_config

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"surrogate source {p}: no such file")
    raw = p.read_bytes()
    text = (gzip.decompress(raw) if p.name.lower().endswith(".gz") else raw).decode()
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    columns = {name: col for col, name in DYNAST_HEADERS.items() if col in header}
    columns.update({h: h for h in header if h in metrics})
    missing = [m for m in metrics if m not in columns]
    if missing:
        raise ConfigError(f"surrogate source {p}: no column for metric '{missing[0]}' (columns: {', '.join(header)})")
    if config_column is not None and config_column not in header:
        raise ConfigError(f"surrogate source {p}: no column '{config_column}'")
    net_col = config_column or next((c for c in CONFIG_COLUMNS if c in header), None)
    if net_col is None and not set(space.names) & set(header):
        raise ConfigError(f"surrogate source {p}: no network column ({', '.join(CONFIG_COLUMNS)} or "
                          f"config_column) and no column named as a variable of space '{space.name}'")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if (row.get("status") or "ok").strip().lower() not in ("ok", ""):
            continue
        values = [(row.get(columns[m]) or "").strip() for m in metrics]
        if not all(values):
            continue
        try:
            y = np.array([float(v) for v in values])
            net = parse_network_text(row[net_col]) if net_col else _from_columns(row, space)
            key = space.key(space.from_config(to_config(net, space)))
        except ValueError:
            raise ConfigError(f"surrogate source {p}, line {line}: a metric is not a number: {values}") from None
        except ConfigError as exc:
            raise ConfigError(f"surrogate source {p}, line {line}: {exc}") from None
        sums[key] = sums.get(key, 0.0) + y
        counts[key] = counts.get(key, 0) + 1
    if not sums:
        raise ConfigError(f"surrogate source {p}: no row with every metric ({', '.join(metrics)})")
    rows = [(k, dict(zip(metrics, (sums[k] / counts[k]).tolist()))) for k in sorted(sums)]
    return f"table:{hashlib.sha256(raw).hexdigest()[:16]}", rows


def exact_metrics(space: SearchSpace, names: Sequence[str], options: Mapping[str, Any] | None = None
                  ) -> Callable[[Mapping[str, Any]], dict[str, float]]:
    """A function config -> ``{name: value}`` of metrics counted from the network's shape
    (``macs`` and ``params``, in millions)."""
    unknown = [n for n in names if n not in EXACT]
    if unknown:
        raise ConfigError(f"surrogate: exact metric '{unknown[0]}' is not one of {list(EXACT)}")
    opts = dict(options or {})
    names = list(names)
    if "ks_0" in space.names and "d_0" in space.names:
        from linas.spaces import ofa_mbv3

        width = float(opts.pop("width_mult", 1.2 if space.name == "ofa_imagenet" else 1.0))
        _no_more(opts)
        fns = {"macs": lambda c: ofa_mbv3.macs(c, width_mult=width) / 1e6,
               "params": lambda c: ofa_mbv3.params(c, width_mult=width) / 1e6}
    elif "encoder_embed_dim" in space.names:
        from supernets.transformer.arch import arch_of

        defaults = HAT_DEFAULTS.get(space.name, {})
        try:
            vocab = int(opts.pop("vocab_size", defaults["vocab_size"]))
            qkv = int(opts.pop("qkv_dim", defaults["qkv_dim"]))
        except KeyError:
            raise ConfigError(f"surrogate: exact metrics of space '{space.name}' need "
                              "exact_options {vocab_size, qkv_dim}") from None
        _no_more(opts)

        def arch(c):
            return arch_of(space, c, vocab, qkv)

        fns = {"macs": lambda c: arch(c).macs() / 1e6, "params": lambda c: arch(c).params() / 1e6}
    else:
        raise ConfigError(f"surrogate: no exact metrics for space '{space.name}' (OFA MobileNetV3 and HAT spaces)")

    def compute(config: Mapping[str, Any]) -> dict[str, float]:
        full = space.to_config(space.from_config(config))
        return {n: float(fns[n](full)) for n in names}

    return compute


def _no_more(opts: Mapping[str, Any]) -> None:
    if opts:
        raise ConfigError(f"surrogate: unknown exact_options {sorted(opts)}")
