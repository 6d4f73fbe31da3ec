"""An experiment: every (strategy, seed) run of one config, sharing one evaluator and cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from linas.archive import EvaluationCache
from linas.config import ExperimentConfig, StrategyConfig
from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.executors import make_executor
from linas.features import FeatureSource, build_feature_source
from linas.objectives import Constraint, Objective
from linas.runner import RunResult, run_search
from linas.space import SearchSpace
from linas.spaces import get_space
from linas.spec import Problem, RunSpec, check_reference_point
from linas.strategies import make_strategy, strategies


@dataclass
class Experiment:
    """A validated config with its space and evaluator built (the evaluator is built once)."""

    config: ExperimentConfig
    space: SearchSpace
    evaluator: Evaluator
    objectives: list[Objective]  # with the config's bounds
    constraints: list[Constraint]
    features: FeatureSource | None = None  # the config's feature source (built in process)

    @classmethod
    def build(cls, config: ExperimentConfig) -> Experiment:
        space = get_space(config.space.name, **config.space.options)
        evaluator_cls = evaluators.get(config.evaluator.name)
        if evaluator_cls.metrics:  # declared on the class: check before loading anything heavy
            _objectives(config, evaluator_cls.metrics)
        check_reference_point(config.reference, len(config.objectives))
        available = tuple(config.features.metrics) if config.features else None
        for s in config.strategies:  # options of every strategy are checked before any run starts
            strategies.get(s.name).check_features(strategies.options(s.name, s.options, n_args=2), available)
        evaluator = make_executor(config.executor.name, config.evaluator.name, space, config.evaluator.options,
                                  config.executor.options)
        features = None
        try:
            objectives, constraints = _objectives(config, evaluator.metrics)
            if config.features is not None:
                features = build_feature_source(config.features, space, config.timeout)
        except ConfigError:
            evaluator.close()
            raise
        return cls(config, space, evaluator, objectives, constraints, features)

    @property
    def problem(self) -> Problem:
        return Problem(self.space, tuple(self.objectives), tuple(self.config.reference), tuple(self.constraints),
                       self.features)

    def spec(self, strategy: StrategyConfig, seed: int) -> RunSpec:
        """The frozen spec of one run of the experiment."""
        c = self.config
        resolved = strategies.options(strategy.name, strategy.options, n_args=2)
        uses_features = self.features is not None and strategies.get(strategy.name).check_features(
            resolved, tuple(self.features.names))
        return RunSpec(
            experiment=c.name,
            space={"name": c.space.name, "options": c.space.options, "fingerprint": self.space.fingerprint()},
            evaluator={"name": c.evaluator.name, "options": c.evaluator.options,
                       "identity": self.evaluator.identity},
            objectives=tuple(self.objectives), reference_point=tuple(c.reference),
            strategy={**strategy.model_dump(exclude={"budget"}),  # options as given, and with defaults
                      "resolved": resolved},
            seed=seed, budget=strategy.budget or c.budget, constraints=tuple(self.constraints),
            targets=tuple(c.targets),
            extra={"features": {**c.features.model_dump(), **self.features.describe()}} if uses_features else {})

    def run(self, progress: bool = True, log=print) -> list[RunResult]:
        c = self.config
        cache = EvaluationCache(c.cache) if c.cache else None
        if self.features is not None:
            self.features.cache = cache  # features persist beside the measurements
        results = []
        try:
            # Seed by seed, so that an interrupted experiment already holds paired runs.
            for seed in c.seeds:
                for strategy_config in c.strategies:
                    run_dir = c.run_dir(strategy_config, seed)
                    strategy = make_strategy(strategy_config.name, self.problem, seed, strategy_config.options)
                    start = time.perf_counter()
                    before = (self.features.computed, self.features.reused, self.features.seconds) \
                        if self.features is not None else None
                    result = run_search(run_dir, self.spec(strategy_config, seed), self.space, self.evaluator,
                                        strategy, cache=cache, timeout=c.timeout, progress=progress,
                                        description=f"{strategy_config.run_label} seed {seed}")
                    note = " (resumed)" if result.resumed else ""
                    note += " (the strategy stopped finding new networks)" if result.exhausted else ""
                    if before is not None and self.features.computed + self.features.reused > before[0] + before[1]:
                        note += (f"; features: {self.features.computed - before[0]} computed "
                                 f"({self.features.seconds - before[2]:.1f} s), "
                                 f"{self.features.reused - before[1]} from the cache")
                    spent = (f" (budget spent {result.spent:.4g})" if abs(result.spent - result.n_validated) > 1e-9
                             else "")
                    log(f"{strategy_config.run_label:>10} seed {seed}: {result.n_validated} validated{spent}, "
                        f"{result.n_failed} failed, HV {result.hypervolume:.4f}, "
                        f"{time.perf_counter() - start:.1f} s{note} -> {run_dir}")
                    results.append(result)
        finally:
            if cache is not None:
                cache.close()
            self.evaluator.close()
            if self.features is not None:
                self.features.close()
        return results


def _objectives(config: ExperimentConfig, metrics: tuple[Objective, ...]
                ) -> tuple[list[Objective], list[Constraint]]:
    """The config's objectives (with their bounds) and constraints, checked against what the evaluator measures."""
    by_name = {m.name: m for m in metrics}
    where = f"evaluator '{config.evaluator.name}'"
    out = []
    for o in config.objectives:
        if o.name not in by_name:
            raise ConfigError(f"unknown objective '{o.name}' for {where}; it measures: {', '.join(by_name)}")
        out.append(by_name[o.name].with_bounds(o.bounds))
    constraints = []
    for c in config.constraints:
        if c.metric not in by_name:
            raise ConfigError(f"constraint on unknown metric '{c.metric}' for {where}; "
                              f"it measures: {', '.join(by_name)}")
        constraints.append(Constraint(c.metric, c.min, c.max))
    return out, constraints


def run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories given directly or found below the given folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "archive.sqlite").is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(q.parent for q in p.rglob("archive.sqlite")))
        else:
            raise ConfigError(f"{p}: no such run directory")
    if not found:
        raise ConfigError("no runs found (a run directory holds archive.sqlite)")
    return found
