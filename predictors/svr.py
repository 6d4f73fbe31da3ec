"""Support-vector regression with a small cross-validated grid."""

from __future__ import annotations

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.svm import SVR

from linas import registry
from predictors.base import Predictor, TargetScaler, predictors


@predictors.register("svr")
class SVRPredictor(Predictor):
    """RBF SVR on one-hot features; ``C`` and ``epsilon`` chosen by k-fold CV.

    The grid is small on purpose: targets are standardized, so a few decades of ``C``
    cover every objective, and the whole selection stays well under a second for
    500 networks.
    """

    encoding = "onehot"

    class Options(registry.Options):
        C: tuple[PositiveFloat, ...] = Field((1.0, 3.0, 10.0, 30.0), min_length=1)
        epsilon: tuple[NonNegativeFloat, ...] = Field((0.1,), min_length=1)
        folds: int = Field(3, ge=2)

    def __init__(self, seed: int = 0, C: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0),
                 epsilon: tuple[float, ...] = (0.1,), folds: int = 3) -> None:
        super().__init__(seed)
        self.grid = {"C": list(C), "epsilon": list(epsilon)}
        self.folds = folds

    def fit(self, X: np.ndarray, y: np.ndarray) -> SVRPredictor:
        self.scaler = TargetScaler().fit(y)
        z = self.scaler.transform(y)
        folds = min(self.folds, len(z))
        if folds < 2:
            self.model = SVR(kernel="rbf", gamma="scale").fit(X, z)
            self.cv_error = float("nan")
            return self._compile()
        cv = KFold(folds, shuffle=True, random_state=self.seed)
        search = GridSearchCV(SVR(kernel="rbf", gamma="scale"), self.grid, cv=cv,
                              scoring="neg_mean_absolute_error")
        search.fit(X, z)
        self.model = search.best_estimator_
        self.cv_error = -float(search.best_score_) * self.scaler.std
        return self._compile()

    def _compile(self) -> SVRPredictor:
        """Keeps what the RBF decision function needs, so :meth:`predict` is a few BLAS calls.

        libsvm evaluates the kernel one pair at a time; the inner search predicts populations
        of tens of networks hundreds of times per iteration, where this is several times faster.
        """
        m = self.model
        self._sv = m.support_vectors_
        self._sv_sq = (self._sv * self._sv).sum(1)
        self._dual = m.dual_coef_.ravel()
        self._gamma = float(m._gamma)
        self._intercept = float(m.intercept_[0])
        return self

    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray:
        if return_std:
            raise self._no_std()
        X = np.asarray(X, dtype=float)
        sq = (X * X).sum(1)[:, None] + self._sv_sq[None, :] - 2.0 * (X @ self._sv.T)
        np.maximum(sq, 0.0, out=sq)
        return self.scaler.inverse(np.exp(-self._gamma * sq) @ self._dual + self._intercept)

    def describe(self) -> str:
        return f"svr(C={self.model.C:g}, epsilon={self.model.epsilon:g})"

