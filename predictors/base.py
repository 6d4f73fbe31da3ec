"""The predictor interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from linas.registry import Registry

predictors: Registry = Registry("predictor", packages=["predictors"])


class Predictor(ABC):
    """Regressor from encoded networks to one objective.

    ``encoding`` names the feature encoding the predictor wants from
    ``SearchSpace.encode`` ("onehot" or "ordinal"). Options (keyword arguments after
    ``seed``) are declared in a nested :class:`linas.registry.Options` model, ``Options``.
    """

    encoding: str = "onehot"
    #: Cross-validated mean absolute error measured while fitting, where the predictor has one.
    cv_error: float = float("nan")
    #: Whether ``predict(X, return_std=True)`` gives a predictive standard deviation.
    has_std: bool = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        """Fit on ``X`` (n, features) and targets ``y`` (n,); returns self."""

    @abstractmethod
    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictions for every row of ``X``, shape (n,); with ``return_std``, also the
        predictive standard deviation of each (predictors whose ``has_std`` is True)."""

    def _no_std(self) -> NotImplementedError:
        return NotImplementedError(f"{self.describe()} has no predictive uncertainty; use a predictor with "
                                   "has_std (gp, ensemble)")

    def describe(self) -> str:
        """What was fitted (model and chosen hyperparameters), for diagnostics."""
        return type(self).__name__


def make_predictor(name: str, seed: int = 0, **options: Any) -> Predictor:
    """Build a registered predictor (``predictors.build``), reporting bad options as one line."""
    return predictors.build(name, seed, **options)


class TargetScaler:
    """Standardizes targets so one hyperparameter grid fits objectives of any scale."""

    def fit(self, y: np.ndarray) -> TargetScaler:
        self.mean = float(np.mean(y))
        self.std = float(np.std(y)) or 1.0
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z) * self.std + self.mean


def encode_for(predictor: Predictor, space, genomes: np.ndarray):
    """The features ``predictor`` wants: one matrix, or for composites a dict of both encodings."""
    if predictor.encoding == "both":
        return {e: space.encode(genomes, e) for e in ("onehot", "ordinal")}
    return space.encode(genomes, predictor.encoding)
