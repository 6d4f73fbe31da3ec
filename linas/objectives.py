"""Objectives and constraints: what an evaluator measures, with direction, unit and bounds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """A measured quantity: ``Objective("top1", "max", "%")``.

    ``bounds`` (low, high), in the objective's own units, fix its normalization for
    hypervolumes; evaluators declare objectives without them and an experiment attaches
    its bounds with :meth:`with_bounds`.
    """

    name: str
    direction: str
    unit: str = ""
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective '{self.name}': direction must be 'max' or 'min', not {self.direction!r}")
        if self.bounds is not None:
            lo, hi = (float(b) for b in self.bounds)
            if not lo < hi:
                raise ValueError(f"objective '{self.name}': bounds must be [low, high] with low < high")
            object.__setattr__(self, "bounds", (lo, hi))

    @property
    def sign(self) -> float:
        """Multiplier that turns the objective into one to minimize."""
        return -1.0 if self.direction == "max" else 1.0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def with_bounds(self, bounds: Sequence[float]) -> Objective:
        return replace(self, bounds=(float(bounds[0]), float(bounds[1])))

    def to_dict(self) -> dict:
        return {"name": self.name, "direction": self.direction, "unit": self.unit,
                "bounds": None if self.bounds is None else list(self.bounds)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Objective:
        bounds = d.get("bounds")
        return cls(d["name"], d["direction"], d.get("unit", ""), None if bounds is None else tuple(bounds))


@dataclass(frozen=True)
class Constraint:
    """A bound on a measured metric: ``Constraint("latency", max=25.0)``.

    Networks outside it are validated and stored but kept off the front. Its violation
    follows pymoo's convention: ``<= 0`` when satisfied, the distance outside otherwise.
    """

    metric: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on '{self.metric}' needs 'min' or 'max'")
        if self.min is not None and self.max is not None and not self.min <= self.max:
            raise ValueError(f"constraint on '{self.metric}': min {self.min} is above max {self.max}")

    def violation(self, value: float) -> float:
        """``<= 0`` when ``value`` satisfies the constraint; NaN stays NaN."""
        v = float(value)
        if math.isnan(v):
            return v
        parts = []
        if self.max is not None:
            parts.append(v - self.max)
        if self.min is not None:
            parts.append(self.min - v)
        return max(parts)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        return f"{self.metric} <= {self.max:g}" if self.max is not None else f"{self.metric} >= {self.min:g}"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, d: Mapping) -> Constraint:
        return cls(d["metric"], d.get("min"), d.get("max"))


def to_minimization(objectives: Sequence[Objective], metrics: Sequence[Mapping[str, float]]) -> np.ndarray:
    """``(n, m)`` array of the objectives to minimize (maximized ones negated)."""
    signs = np.array([o.sign for o in objectives])
    values = np.array([[float(m[o.name]) for o in objectives] for m in metrics], dtype=float)
    return values.reshape(len(metrics), len(objectives)) * signs


def violations(constraints: Sequence[Constraint], metrics: Sequence[Mapping[str, float]]) -> np.ndarray:
    """``(n, k)`` array of constraint violations (``<= 0`` satisfied; NaN where a metric is missing)."""
    out = np.full((len(metrics), len(constraints)), np.nan)
    for i, m in enumerate(metrics):
        for j, c in enumerate(constraints):
            if c.metric in m:
                out[i, j] = c.violation(m[c.metric])
    return out


def feasible(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> bool:
    return all(c.violation(metrics[c.metric]) <= 0 for c in constraints)
