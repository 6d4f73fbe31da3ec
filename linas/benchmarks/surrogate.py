"""A surrogate benchmark: an evaluator fitted to networks that were measured for real.

Once an experiment has measured a few hundred or thousand networks (its evaluation
cache holds them all), a regression model fitted to those measurements stands in for
the real evaluator, so strategies can be compared over many seeds and long budgets in
minutes. It is a *surrogate*: its numbers are model predictions, not measurements, and
its identity says so.

The model (a multi-layer perceptron by default, or extremely randomized trees) is
deliberately of another class than the LINAS predictors (ridge, SVR, gradient
boosting), so LINAS is not handed a landscape shaped like its own predictors.

    evaluator:
      name: surrogate
      options:
        source: runs/multi30k/cache.sqlite       # an evaluation cache
        source_evaluator: "hat_supernet:..."     # which evaluator's rows (optional if only one)
        metrics: {bleu: max, latency: min}

``source`` may also be a CSV of measured networks, and ``exact: [macs, params]`` adds
metrics counted from each network's shape instead of predicted
(:mod:`linas.benchmarks.surrogate_table`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from linas import registry
from linas.errors import ConfigError
from linas.evaluator import Evaluator, Outcome, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace


def read_cache(path: str | Path, evaluator: str | None = None) -> tuple[str, list[tuple[str, dict]]]:
    """``(evaluator identity, [(config key, metrics), ...])`` from an evaluation cache."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"surrogate source {p}: no such file")
    try:
        with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as conn:
            identities = [r[0] for r in conn.execute("SELECT DISTINCT evaluator FROM cache")]
            if evaluator is None:
                if len(identities) != 1:
                    raise ConfigError(f"surrogate source {p} holds {len(identities)} evaluators; name one with "
                                      f"source_evaluator: {identities}")
                evaluator = identities[0]
            rows = conn.execute("SELECT config_key, metrics FROM cache WHERE evaluator = ? ORDER BY config_key",
                                (evaluator,)).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"surrogate source {p}: not an evaluation cache ({exc})") from None
    if not rows:
        raise ConfigError(f"surrogate source {p}: no evaluations of '{evaluator}'")
    return evaluator, [(k, json.loads(m)) for k, m in rows]


@evaluators.register("surrogate")
class Surrogate(Evaluator):
    """Objectives predicted by a model fitted to measured networks (see the module docstring)."""

    class Options(registry.Options):
        source: str  # an evaluation cache (SQLite) of measured networks
        metrics: dict[str, Literal["min", "max"]] = Field(min_length=1)  # metric -> direction
        source_evaluator: str | None = None  # the identity to fit, when the cache holds several
        model: Literal["mlp", "extra_trees"] = "mlp"
        seed: int = 0
        config_column: str | None = None  # CSV sources: the column holding each network
        exact: list[str] = Field(default_factory=list)  # metrics counted, not predicted: macs, params
        exact_options: dict[str, Any] = Field(default_factory=dict)  # width_mult, vocab_size, qkv_dim

    def __init__(self, space: SearchSpace, source: str, metrics: Mapping[str, str],
                 source_evaluator: str | None = None, model: str = "mlp", seed: int = 0,
                 config_column: str | None = None, exact: Sequence[str] = (),
                 exact_options: Mapping[str, Any] | None = None) -> None:
        from linas.benchmarks.surrogate_table import exact_metrics, is_table, read_table

        super().__init__(space)
        self.metrics = tuple(Objective(name, direction) for name, direction in metrics.items())
        self.predicted = self.metrics
        if set(exact) & set(metrics):
            raise ConfigError(f"evaluator 'surrogate': {sorted(set(exact) & set(metrics))} are both predicted and exact")
        self._exact = exact_metrics(space, exact, exact_options) if exact else None
        self.metrics = self.predicted + tuple(Objective(name, "min", "M") for name in exact)
        if is_table(source):
            self.source_identity, rows = read_table(source, space, [m.name for m in self.predicted], config_column)
        else:
            self.source_identity, rows = read_cache(source, source_evaluator)
        genomes = np.array([space.from_key(k) for k, _ in rows])
        missing = [m.name for m in self.predicted if any(m.name not in r for _, r in rows)]
        if missing:
            raise ConfigError(f"surrogate source {source}: metric(s) {missing} missing from its evaluations")
        self.X = space.encode(genomes, "onehot")
        self.Y = np.array([[r[m.name] for m in self.predicted] for _, r in rows])
        self.kind, self.seed = model, seed
        self.model = self._model().fit(self.X, _targets(self.Y))
        digest = hashlib.sha256(self.Y.tobytes() + self.X.tobytes()).hexdigest()[:12]
        self._identity = f"surrogate:{model}:{seed}:{digest}"
        if exact:
            self._identity += ":exact=" + ",".join(exact) + "".join(f":{k}={v}" for k, v in sorted((exact_options or {}).items()))

    def _model(self):
        if self.kind == "extra_trees":
            return ExtraTreesRegressor(n_estimators=300, min_samples_leaf=2, max_features=0.5,
                                       random_state=self.seed, n_jobs=1)
        mlp = MLPRegressor(hidden_layer_sizes=(64, 64), alpha=0.1, max_iter=3000, random_state=self.seed)
        return TransformedTargetRegressor(mlp, transformer=StandardScaler())

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def n_measured(self) -> int:
        return len(self.Y)

    def fidelity(self, folds: int = 5) -> dict[str, dict[str, float]]:
        """Cross-validated Kendall tau and R^2 of the surrogate on the measured networks."""
        from scipy.stats import kendalltau

        predicted = cross_val_predict(self._model(), self.X, _targets(self.Y),
                                      cv=KFold(folds, shuffle=True, random_state=self.seed)).reshape(self.Y.shape)
        out = {}
        for j, m in enumerate(self.predicted):
            y, p = self.Y[:, j], predicted[:, j]
            r2 = 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
            out[m.name] = {"kendall_tau": float(kendalltau(y, p).statistic), "r2": float(r2)}
        return out

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        x = self.space.encode(self.space.from_config(config)[None], "onehot")
        out = dict(zip([m.name for m in self.predicted], map(float, np.atleast_2d(self.model.predict(x))[0])))
        if self._exact is not None:
            out.update(self._exact(config))
        return out

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None
                 ) -> Iterator[tuple[int, Outcome]]:
        """All predictions of a batch at once (a batch costs about as much as one row)."""
        genomes = np.array([self.space.from_config(c) for c in configs])
        predicted = self.model.predict(self.space.encode(genomes, "onehot"))
        names = [m.name for m in self.predicted]
        for i, row in enumerate(np.atleast_2d(predicted).reshape(len(configs), len(names))):
            out = dict(zip(names, map(float, row)))
            if self._exact is not None:
                out.update(self._exact(configs[i]))
            yield i, Outcome(out, None, 0.0)


def _targets(y: np.ndarray) -> np.ndarray:
    """One target as a vector (what scikit-learn expects), several as columns."""
    return y[:, 0] if y.shape[1] == 1 else y
