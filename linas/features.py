"""Feature sources: cheap metrics of networks (zero-cost proxies, MACs...) a strategy may ask about.

An experiment config names one under ``features:``: a registered evaluator, its options and
the metrics to use::

    features:
      name: zc_mbv3
      options: {checkpoint: results/mbv3/tiny_imagenet/supernet.pt, proxies: [snip, jacob_cov], ...}
      metrics: [snip, jacob_cov, macs]

A strategy reaches it as ``self.features`` (``problem.features``): ``values(genomes)`` are
the raw metrics, one column per name, ``minimization(genomes)`` the same turned to
minimization by each metric's declared direction. Values are computed on demand, in
process, for any network, validated or not; they are not validations (they never reach
the run's archive, its budget or its hypervolume). Each successful one is kept in the
experiment's evaluation cache under the feature evaluator's identity, so another seed,
another strategy or a resumed run reads it back instead of computing it again. A failed
computation is a NaN row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from linas.archive import EvaluationCache
from linas.config import FeaturesConfig
from linas.errors import ConfigError
from linas.evaluator import Evaluator


class FeatureSource:
    """The ``metrics`` of an evaluator as features of networks, computed once per network.

    ``cache`` (an :class:`~linas.archive.EvaluationCache`, optional) persists them across
    processes; without one they are kept for the life of the source. ``computed``,
    ``reused`` and ``seconds`` count what was computed, what was found, and the time spent.
    """

    def __init__(self, evaluator: Evaluator, metrics: Sequence[str], cache: EvaluationCache | None = None,
                 timeout: float | None = None, name: str | None = None) -> None:
        declared = {m.name: m for m in evaluator.metrics}
        where = f"features '{name or evaluator.identity}'"
        if not metrics:
            raise ConfigError(f"{where}: name at least one metric")
        for m in metrics:
            if m not in declared:
                raise ConfigError(f"{where}: unknown metric '{m}'; it measures: {', '.join(declared)}")
        if len(set(metrics)) != len(metrics):
            raise ConfigError(f"{where}: metrics are repeated")
        self.evaluator, self.space = evaluator, evaluator.space
        self.names: tuple[str, ...] = tuple(metrics)
        self.directions: dict[str, str] = {m: declared[m].direction for m in self.names}
        self.cache, self.timeout = cache, timeout
        self._memory: dict[str, dict[str, float] | None] = {}
        self.computed = self.reused = 0
        self.seconds = 0.0

    @property
    def identity(self) -> str:
        return self.evaluator.identity

    def _columns(self, metrics: Sequence[str] | None) -> tuple[str, ...]:
        names = self.names if metrics is None else tuple(metrics)
        for m in names:
            if m not in self.names:
                raise ConfigError(f"feature '{m}' is not among the features ({', '.join(self.names)})")
        return names

    def values(self, genomes: np.ndarray, metrics: Sequence[str] | None = None) -> np.ndarray:
        """``(n, k)`` raw values of ``metrics`` (default: every feature) of ``genomes``; NaN rows where
        the computation failed."""
        names = self._columns(metrics)
        genomes = np.asarray(genomes, dtype=np.int64).reshape(-1, len(self.space))
        keys = self.space.keys(genomes)
        pending: dict[str, np.ndarray] = {}
        for g, k in zip(genomes, keys):
            if k in self._memory or k in pending:
                continue
            hit = self.cache.get(self.identity, k) if self.cache is not None else None
            if hit is not None:
                self._memory[k] = hit[0]
                self.reused += 1
            else:
                pending[k] = g
        if pending:
            todo = list(pending)
            configs = [self.space.to_config(pending[k]) for k in todo]
            for i, outcome in self.evaluator.evaluate(configs, self.timeout):
                self.computed += 1
                self.seconds += outcome.wall_time
                self._memory[todo[i]] = outcome.metrics if outcome.ok else None
                if outcome.ok and self.cache is not None:
                    self.cache.put(self.identity, todo[i], outcome.metrics, outcome.wall_time)
        out = np.full((len(keys), len(names)), np.nan)
        for i, k in enumerate(keys):
            found = self._memory.get(k)
            if found is not None:
                out[i] = [found.get(m, np.nan) for m in names]
        return out

    def minimization(self, genomes: np.ndarray, metrics: Sequence[str] | None = None) -> np.ndarray:
        """:meth:`values` with the columns of metrics to maximize negated (lower is better in every column)."""
        names = self._columns(metrics)
        signs = np.array([-1.0 if self.directions[m] == "max" else 1.0 for m in names])
        return self.values(genomes, names) * signs

    def describe(self) -> dict[str, Any]:
        """What the run's spec records about the source."""
        return {"identity": self.identity, "metrics": list(self.names)}

    def close(self) -> None:
        self.evaluator.close()


def build_feature_source(config: FeaturesConfig, space, timeout: float | None = None) -> FeatureSource:
    """The source a ``features:`` section describes (its evaluator built in process; no cache yet)."""
    from linas.evaluator import evaluators, make_evaluator

    evaluator_cls = evaluators.get(config.name)
    declared = [m.name for m in evaluator_cls.metrics]
    if declared:  # declared on the class: check the names before loading anything heavy
        unknown = [m for m in config.metrics if m not in declared]
        if unknown:
            raise ConfigError(f"features '{config.name}': unknown metric '{unknown[0]}'; "
                              f"it measures: {', '.join(declared)}")
    evaluator = make_evaluator(config.name, space, config.options)
    try:
        return FeatureSource(evaluator, config.metrics, timeout=timeout, name=config.name)
    except ConfigError:
        evaluator.close()
        raise

