"""Predictors of an objective from a network's encoded design variables.

Every predictor has the same interface (:class:`predictors.base.Predictor`):
``fit(X, y)`` and vectorized ``predict(X)`` on the feature matrix that
``SearchSpace.encode(genomes, predictor.encoding)`` returns.

``make_predictor("ridge")``, ``"svr"``, ``"gbm"``, ``"ensemble"`` or ``"auto"`` (the better
of ridge and SVR by cross-validation). A new predictor is one module in this package
that registers itself with ``@predictors.register("name")``.
"""

from predictors.base import Predictor, encode_for, make_predictor, predictors

__all__ = ["Predictor", "encode_for", "make_predictor", "predictors"]
