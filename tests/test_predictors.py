"""Predictors: one interface, sensible fits, cheap model selection."""

from __future__ import annotations

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import to_minimization
from predictors import encode_for, make_predictor, predictors
from predictors.diagnostics import prediction_quality

NAMES = predictors.names()


@pytest.fixture(scope="module")
def data(synthetic):
    space = synthetic.space
    g = space.sample_unique(np.random.default_rng(0), 300)
    F = to_minimization(synthetic.metrics[:2], [synthetic.evaluate_one(space.to_config(x)) for x in g])
    return space, g[:200], F[:200], g[200:], F[200:]


def test_the_standard_predictors_are_registered():
    assert {"ridge", "svr", "gbm", "auto", "ensemble", "gp"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_predictors_are_deterministic_given_their_seed(data, name):
    space, g, F, g_test, _ = data

    def predictions():
        model = make_predictor(name, seed=3)
        model.fit(encode_for(model, space, g[:80]), F[:80, 0])
        return model.predict(encode_for(model, space, g_test))

    np.testing.assert_array_equal(predictions(), predictions())


@pytest.mark.parametrize("name", NAMES)
def test_predictive_std_is_given_where_a_predictor_has_one(data, name):
    space, g, F, g_test, _ = data
    model = make_predictor(name, seed=0)
    model.fit(encode_for(model, space, g[:100]), F[:100, 1])
    X = encode_for(model, space, g_test)
    if not model.has_std:
        with pytest.raises(NotImplementedError, match="no predictive uncertainty"):
            model.predict(X, return_std=True)
        return
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_allclose(mean, model.predict(X))
    assert std.shape == mean.shape and np.all(std >= 0) and np.any(std > 0)


def test_gp_is_more_certain_where_it_has_seen_networks(data):
    space, g, F, g_test, _ = data
    model = make_predictor("gp", seed=0).fit(space.encode(g[:100], "ordinal"), F[:100, 1])
    _, seen = model.predict(space.encode(g[:100], "ordinal"), return_std=True)
    _, unseen = model.predict(space.encode(g_test, "ordinal"), return_std=True)
    assert seen.mean() < unseen.mean()


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
