"""Gradient-boosted trees: a non-linear predictor that captures interactions."""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.ensemble import HistGradientBoostingRegressor

from linas import registry
from predictors.base import Predictor, predictors


@predictors.register("gbm")
class GradientBoostingPredictor(Predictor):
    """Histogram gradient boosting on ordinal features (trees split ordinal codes well)."""

    encoding = "ordinal"

    class Options(registry.Options):
        max_iter: int = Field(200, ge=1)
        learning_rate: float = Field(0.05, gt=0)
        max_leaf_nodes: int = Field(15, ge=2)
        l2_regularization: float = Field(1.0, ge=0)

    def __init__(self, seed: int = 0, max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, l2_regularization: float = 1.0) -> None:
        super().__init__(seed)
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                           l2_regularization=l2_regularization, early_stopping=False, random_state=seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> GradientBoostingPredictor:
        self.model = HistGradientBoostingRegressor(**self.params).fit(X, y)
        return self

    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray:
        if return_std:
            raise self._no_std()
        return self.model.predict(X)

    def describe(self) -> str:
        return f"gbm(iters={self.params['max_iter']})"
