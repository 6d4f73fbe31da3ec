"""Gaussian process regression (scikit-learn): a predictor with calibrated uncertainty."""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from linas import registry
from predictors.base import Predictor, TargetScaler, predictors


@predictors.register("gp")
class GaussianProcessPredictor(Predictor):
    """GP with a Matern-5/2 kernel plus a noise term, hyperparameters by marginal
    likelihood; ``predict(X, return_std=True)`` gives the posterior std.

    By default one length scale on one-hot features (seconds at a few hundred networks on
    one core); ``ard: true`` learns one per variable on ordinal features, which ranks
    better (Kendall tau 0.87 vs 0.80 on the synthetic space at 200 networks) at about
    ten times the fitting time.
    """

    has_std = True

    class Options(registry.Options):
        ard: bool = False
        restarts: int = Field(0, ge=0, description="extra random restarts of the hyperparameter fit")

    def __init__(self, seed: int = 0, ard: bool = False, restarts: int = 0) -> None:
        super().__init__(seed)
        self.ard, self.restarts = ard, restarts
        self.encoding = "ordinal" if ard else "onehot"

    def fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcessPredictor:
        X = np.asarray(X, dtype=float)
        self.scaler = TargetScaler().fit(y)
        scales = np.ones(X.shape[1]) if self.ard else 1.0
        kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(scales, (1e-2, 1e3), nu=2.5)
                  + WhiteKernel(0.1, (1e-6, 1.0)))
        self.model = GaussianProcessRegressor(kernel, n_restarts_optimizer=self.restarts,
                                              random_state=self.seed).fit(X, self.scaler.transform(y))
        return self

    def predict(self, X: np.ndarray, return_std: bool = False):
        mean, std = self.model.predict(np.asarray(X, dtype=float), return_std=True)
        mean = self.scaler.inverse(mean)
        return (mean, std * self.scaler.std) if return_std else mean

    def describe(self) -> str:
        return f"gp({self.model.kernel_})"
