"""Experiment configuration: YAML validated into typed objects.

Example (``experiments/configs/synthetic_mbv3.yaml``)::

    name: synthetic_mbv3
    space: {name: ofa_mbv3}
    evaluator: {name: synthetic_mbv3, options: {noise: 0.1}}
    executor: {name: local}          # or {name: ray, options: {...}}: where evaluations run
    objectives:                      # the first two or more metrics the evaluator measures
      - {name: top1, bounds: [60, 80]}      # fixed normalization bounds, never fitted to results
      - {name: latency, bounds: [5, 40]}
    reference_point: [1.0, 1.0]      # in normalized space (default 1 per objective)
    strategies:
      - {name: linas, options: {population: 50}}
      - {name: nsga2, options: {population: 50}}
      - {name: random, options: {population: 50}}
    seeds: [0, 1, 2]
    budget: 300                      # successful validations per run, exactly
    timeout: 600                     # seconds per evaluation (optional)
    cache: runs/synthetic_mbv3/cache.sqlite   # shared measurements (optional)
    output: runs/synthetic_mbv3      # runs go to OUTPUT/<strategy>/seed<k>
    targets: [0.6, 0.7]              # hypervolumes for the "validations to reach" table
    plugins: [my_evaluators]         # modules imported first, looked up beside this file and in
                                     # the working directory: components they register can be named here
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from linas.config_io import StrictModel, load_yaml, parse
from linas.errors import ConfigError


class Component(StrictModel):
    """A registered component by name, with its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(Component):
    label: str | None = None
    budget: int | None = Field(default=None, gt=0)  # this strategy's budget, when not the experiment's

    @property
    def run_label(self) -> str:
        return self.label or self.name


class FeaturesConfig(Component):
    """``features: {name: EVALUATOR, options: {...}, metrics: [...]}``: cheap metrics of networks
    (zero-cost proxies, MACs) that strategies may compute for any network (:mod:`linas.features`)."""

    metrics: list[str] = Field(min_length=1)


class ObjectiveConfig(StrictModel):
    name: str
    bounds: tuple[float, float]

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError("bounds must be [low, high] with low < high")
        return v


class ConstraintConfig(StrictModel):
    """``{metric: latency, max: 25.0}``: networks outside it are stored but kept off the front."""

    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> ConstraintConfig:
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on '{self.metric}' needs 'min' or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"constraint on '{self.metric}': min is above max")
        return self


class ExperimentConfig(StrictModel):
    name: str
    space: Component
    evaluator: Component
    executor: Component = Field(default_factory=lambda: Component(name="local"))
    objectives: list[ObjectiveConfig] = Field(min_length=2)
    reference_point: list[float] | None = None
    constraints: list[ConstraintConfig] = Field(default_factory=list)
    strategies: list[StrategyConfig] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budget: int = Field(gt=0)
    timeout: float | None = Field(default=None, gt=0)
    cache: str | None = None
    output: str
    targets: list[float] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)  # modules imported first (they register components)
    features: FeaturesConfig | None = None  # feature source strategies may ask (linas.features)

    @field_validator("reference_point")
    @classmethod
    def _inside_the_box(cls, v: list[float] | None) -> list[float] | None:
        # Normalized objectives are 0 at the best bound and 1 at the worst: a reference
        # value <= 0 leaves nothing within the bounds to dominate it (every HV would be 0).
        if v is not None and not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"every value must be a finite number > 0 in normalized space (0: the best "
                             f"bound, 1: the worst), not {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.reference_point is not None and len(self.reference_point) != len(self.objectives):
            raise ValueError(f"reference_point needs {len(self.objectives)} values, one per objective")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objectives are repeated")
        labels = [s.run_label for s in self.strategies]
        if len(set(labels)) != len(labels):
            raise ValueError("two strategies share a label; give them distinct 'label's")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds are repeated")
        return self

    @property
    def reference(self) -> list[float]:
        return self.reference_point or [1.0] * len(self.objectives)

    def run_dir(self, strategy: StrategyConfig, seed: int) -> Path:
        return Path(self.output).expanduser() / strategy.run_label / f"seed{seed}"


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """The validated config, after importing its ``plugins`` (so components they register
    can be named in it)."""
    data = load_yaml(path)
    data.update(overrides or {})
    if "budget" in (overrides or {}) and isinstance(data.get("strategies"), list):
        # A budget given on the command line is every run's, per-strategy budgets included.
        data["strategies"] = [{k: v for k, v in s.items() if k != "budget"} if isinstance(s, dict) else s
                              for s in data["strategies"]]
    config = parse(ExperimentConfig, data, where=str(path))
    import_plugins(config.plugins, Path(path).parent)
    return config


def import_plugins(modules: list[str], config_dir: str | Path = ".") -> None:
    """Import each module (``my_evaluators`` or ``pkg.module``), looked up on ``sys.path`` with
    the config's folder and the working directory in front; a failure is one ConfigError line."""
    if not modules:
        return
    folders = [str(Path(config_dir).resolve()), str(Path.cwd())]
    saved = list(sys.path)
    sys.path[:0] = [f for f in folders if f not in sys.path]
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - anything a user module raises is reported as one line
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ConfigError(f"plugins: cannot import '{module}': {type(exc).__name__}"
                                  f"{': ' + text if text else ''}") from None
    finally:
        sys.path[:] = saved
