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
from linas.objectives import Objective
from linas.runner import RunResult, run_search
from linas.space import SearchSpace
from linas.spaces import get_space
from linas.strategies import make_strategy


@dataclass
class Experiment:
    """A validated config with its space and evaluator built (the evaluator is built once)."""

    config: ExperimentConfig
    space: SearchSpace
    evaluator: Evaluator
    objectives: list[Objective]

    @classmethod
    def build(cls, config: ExperimentConfig) -> Experiment:
        space = get_space(config.space.name, **config.space.options)
        evaluator_cls = evaluators.get(config.evaluator.name)
        if evaluator_cls.metrics:  # declared on the class: check before loading anything heavy
            _objectives(config, evaluator_cls.metrics, config.evaluator.name)
        for s in config.strategies:  # options of every strategy are checked before any run starts
            make_strategy(s.name, space, len(config.objectives), config.seeds[0], s.options)
        evaluator = make_executor(config.executor.name, config.evaluator.name, space, config.evaluator.options,
                                  config.executor.options)
        return cls(config, space, evaluator, _objectives(config, evaluator.metrics, config.evaluator.name))

    def settings(self, strategy: StrategyConfig, seed: int) -> dict:
        """What must be equal for a run to resume (budget and timeout may change)."""
        c = self.config
        return {"space": c.space.model_dump(), "evaluator": c.evaluator.model_dump(),
                "objectives": [o.model_dump(mode="json") for o in c.objectives], "reference_point": c.reference,
                "strategy": strategy.model_dump(), "seed": seed}

    def run(self, progress: bool = True, log=print) -> list[RunResult]:
        c = self.config
        cache = EvaluationCache(c.cache) if c.cache else None
        results = []
        try:
            # Seed by seed, so that an interrupted experiment already holds paired runs.
            for seed in c.seeds:
                for strategy_config in c.strategies:
                    run_dir = c.run_dir(strategy_config, seed)
                    strategy = make_strategy(strategy_config.name, self.space, len(self.objectives), seed,
                                             strategy_config.options)
                    start = time.perf_counter()
                    result = run_search(
                        run_dir, self.space, self.evaluator, strategy, self.objectives,
                        [o.bounds for o in c.objectives], c.budget, self.settings(strategy_config, seed),
                        reference_point=c.reference, cache=cache, timeout=c.timeout, progress=progress,
                        details={"experiment": c.name, "targets": c.targets, "budget": c.budget},
                        description=f"{strategy_config.run_label} seed {seed}")
                    note = " (resumed)" if result.resumed else ""
                    note += " (the strategy stopped finding new networks)" if result.exhausted else ""
                    log(f"{strategy_config.run_label:>10} seed {seed}: {result.n_validated} validated, "
                        f"{result.n_failed} failed, HV {result.hypervolume:.4f}, "
                        f"{time.perf_counter() - start:.1f} s{note} -> {run_dir}")
                    results.append(result)
        finally:
            if cache is not None:
                cache.close()
            self.evaluator.close()
        return results


def _objectives(config: ExperimentConfig, metrics: tuple[Objective, ...], evaluator: str) -> list[Objective]:
    by_name = {m.name: m for m in metrics}
    out = []
    for o in config.objectives:
        if o.name not in by_name:
            raise ConfigError(f"unknown objective '{o.name}' for evaluator '{evaluator}'; "
                              f"it measures: {', '.join(by_name)}")
        out.append(by_name[o.name])
    return out


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
