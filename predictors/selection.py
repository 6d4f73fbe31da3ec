"""Predictors built from other predictors: cross-validated choice and averaging."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from linas import registry
from predictors.base import Predictor, make_predictor, predictors


class _Composite(Predictor):
    """Members may want different encodings; composites take both, stacked as a dict."""

    encoding = "both"

    def __init__(self, seed: int = 0, members: Sequence[str] = ()) -> None:
        super().__init__(seed)
        self.members = list(members)

    def _new(self, name: str) -> Predictor:
        return make_predictor(name, seed=self.seed)


@predictors.register("auto")
class CrossValidatedChoice(_Composite):
    """Fits every candidate and keeps the one with the lowest cross-validated error.

    Each candidate reports the k-fold mean absolute error it measured while selecting
    its own hyperparameters (``cv_error``), so the choice costs no extra fits. The
    default candidates, ridge and SVR, are those of the LINAS paper.
    """

    class Options(registry.Options):
        members: tuple[str, ...] = Field(("ridge", "svr"), min_length=1)

    def __init__(self, seed: int = 0, members: Sequence[str] = ("ridge", "svr")) -> None:
        super().__init__(seed, members)

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray) -> CrossValidatedChoice:
        fitted = [self._new(n) for n in self.members]
        for model in fitted:
            model.fit(X[model.encoding], y)
        errors = [m.cv_error if np.isfinite(m.cv_error) else np.inf for m in fitted]
        self.model = fitted[int(np.argmin(errors))]
        self.cv_error = self.model.cv_error
        self.scores = dict(zip(self.members, errors))
        return self

    def predict(self, X: dict[str, np.ndarray], return_std: bool = False):
        return self.model.predict(X[self.model.encoding], return_std=return_std)

    def describe(self) -> str:
        return f"auto->{self.model.describe()}"


@predictors.register("ensemble")
class Ensemble(_Composite):
    """Mean of the members' predictions (default ridge, SVR and gradient boosting); their
    spread (standard deviation across members) is the predictive uncertainty."""

    has_std = True

    class Options(registry.Options):
        members: tuple[str, ...] = Field(("ridge", "svr", "gbm"), min_length=1)

    def __init__(self, seed: int = 0, members: Sequence[str] = ("ridge", "svr", "gbm")) -> None:
        super().__init__(seed, members)

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray) -> Ensemble:
        self.models = [self._new(n) for n in self.members]
        for m in self.models:
            m.fit(X[m.encoding], y)
        return self

    def predict(self, X: dict[str, np.ndarray], return_std: bool = False):
        P = np.array([m.predict(X[m.encoding]) for m in self.models])
        return (P.mean(axis=0), P.std(axis=0)) if return_std else P.mean(axis=0)

    def describe(self) -> str:
        return "ensemble(" + ", ".join(m.describe() for m in self.models) + ")"
