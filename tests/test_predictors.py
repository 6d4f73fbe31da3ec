"""Predictors: one interface, sensible fits, cheap model selection."""

from __future__ import annotations

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import to_minimization
from predictors import encode_for, make_predictor, predictors
from predictors.diagnostics import prediction_quality

NAMES = ["ridge", "svr", "gbm", "auto", "ensemble"]


@pytest.fixture(scope="module")
def data(synthetic):
    space = synthetic.space
    g = space.sample_unique(np.random.default_rng(0), 300)
    F = to_minimization(synthetic.metrics[:2], [synthetic.evaluate_one(space.to_config(x)) for x in g])
    return space, g[:200], F[:200], g[200:], F[200:]


def test_all_predictors_are_registered():
    assert set(NAMES) <= set(predictors.names())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("objective", [0, 1])
def test_predictors_rank_held_out_networks_well(data, name, objective):
    space, g, F, g_test, F_test = data
    model = make_predictor(name, seed=0)
    model.fit(encode_for(model, space, g), F[:, objective])
    predicted = model.predict(encode_for(model, space, g_test))
    assert predicted.shape == (len(g_test),)
    assert prediction_quality(predicted, F_test[:, objective])["kendall_tau"] > 0.6



@pytest.mark.parametrize("name", ["ridge", "svr"])
def test_fast_predictions_equal_the_fitted_sklearn_models(data, name):
    space, g, F, g_test, _ = data
    model = make_predictor(name, seed=0).fit(space.encode(g, "onehot"), F[:, 0])
    X = space.encode(g_test, "onehot")
    np.testing.assert_allclose(model.predict(X), model.scaler.inverse(model.model.predict(X)), rtol=1e-9, atol=1e-9)

def test_auto_keeps_the_candidate_with_the_lower_cross_validated_error(data):
    space, g, F, _, _ = data
    model = make_predictor("auto")
    model.fit(encode_for(model, space, g), F[:, 0])
    assert set(model.scores) == {"ridge", "svr"}
    assert model.cv_error == min(model.scores.values())
    assert model.describe().startswith("auto->" + min(model.scores, key=model.scores.get))


def test_predictions_are_reproducible(data):
    space, g, F, g_test, _ = data
    runs = []
    for _ in range(2):
        model = make_predictor("ensemble", seed=3)
        model.fit(encode_for(model, space, g), F[:, 1])
        runs.append(model.predict(encode_for(model, space, g_test)))
    assert np.array_equal(runs[0], runs[1])


def test_prediction_quality_reports_tau_and_mae():
    q = prediction_quality(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5]))
    assert q == {"kendall_tau": pytest.approx(1.0), "mae": pytest.approx(0.5), "n": 3}
    assert prediction_quality(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]))["kendall_tau"] == \
        pytest.approx(-1.0)


def test_unknown_predictor_or_option_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown predictor 'mlp9'"):
        make_predictor("mlp9")
    with pytest.raises(ConfigError, match="predictor 'ridge'"):
        make_predictor("ridge", depth=3)
