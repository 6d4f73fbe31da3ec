"""Objectives: what an evaluator measures, with direction and unit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """A measured quantity: ``Objective("top1", "max", "%")``."""

    name: str
    direction: str
    unit: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective '{self.name}': direction must be 'max' or 'min', not {self.direction!r}")

    @property
    def sign(self) -> float:
        """Multiplier that turns the objective into one to minimize."""
        return -1.0 if self.direction == "max" else 1.0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


def to_minimization(objectives: Sequence[Objective], metrics: Sequence[Mapping[str, float]]) -> np.ndarray:
    """``(n, m)`` array of the objectives to minimize (maximized ones negated)."""
    signs = np.array([o.sign for o in objectives])
    values = np.array([[float(m[o.name]) for o in objectives] for m in metrics], dtype=float)
    return values.reshape(len(metrics), len(objectives)) * signs
