"""MOBO's core: exact 2-objective improvement, EHVI against brute force, greedy batches."""

from __future__ import annotations

import numpy as np

from linas.mo import hv_improvement
from linas.strategies import make_strategy
from linas.mo import expected_hv_improvement, hv_improvement_2d
from linas.strategies.mobo import GP
from linas.testing import two_objectives

REF = (1.0, 1.0)


def test_the_vectorized_improvement_is_exact():
    rng = np.random.default_rng(0)
    front = np.array([[0.2, 0.8], [0.5, 0.4], [0.9, 0.1], [0.6, 0.6], [1.2, 0.05]])  # one dominated, one outside
    points = rng.uniform(-0.1, 1.2, size=(300, 2))
    np.testing.assert_allclose(hv_improvement_2d(points, front, REF), hv_improvement(front, points, REF), atol=1e-12)
    np.testing.assert_allclose(hv_improvement_2d(points, np.empty((0, 2)), REF),
                               hv_improvement(np.empty((0, 2)), points, REF), atol=1e-12)


def test_ehvi_matches_a_brute_force_monte_carlo_estimate():
    front = np.array([[0.2, 0.7], [0.6, 0.3]])
    mean = np.array([[0.35, 0.4], [0.1, 0.9], [0.8, 0.8]])
    std = np.array([[0.1, 0.15], [0.05, 0.05], [0.3, 0.2]])
    Z = np.random.default_rng(1).standard_normal((4000, 2))
    ehvi = expected_hv_improvement(mean, std, front, REF, Z)
    # Brute force: independent draws per candidate, the hypervolume improvement of each draw
    # by linas.mo.hv_improvement (pymoo's hypervolume).
    rng = np.random.default_rng(2)
    for i in range(len(mean)):
        draws = mean[i] + std[i] * rng.standard_normal((4000, 2))
        brute = hv_improvement(front, draws, REF)
        se = brute.std() / np.sqrt(len(brute))
        assert abs(ehvi[i] - brute.mean()) < 4 * se + 1e-4, (i, ehvi[i], brute.mean())
    # Closed form for a deterministic point: EHVI is its improvement.
    np.testing.assert_allclose(expected_hv_improvement(mean, np.zeros_like(std), front, REF, Z),
                               hv_improvement(front, mean, REF), atol=1e-12)


def test_the_gp_latent_posterior_interpolates():
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    gp = GP().fit(X, y)
    mean, cov = gp.posterior(X[:5])
    np.testing.assert_allclose(mean, y[:5], atol=0.05)
    np.testing.assert_allclose(np.diag(cov), gp.posterior(X[:5], full_cov=False)[1], atol=1e-10)
    assert (np.diag(cov) >= -1e-10).all()
    from scipy.spatial.distance import cdist

    np.testing.assert_allclose(gp.mean(X[:5], cdist(X[:5], X)), mean, atol=1e-9)  # shared distances
    sub = GP(fit_points=20).fit(X, y)  # hyperparameters from 20 rows, the posterior from all 40
    np.testing.assert_allclose(sub.posterior(X[:5])[0], y[:5], atol=0.1)


def test_a_batch_is_new_distinct_networks(toy_space):
    s = make_strategy("mobo", two_objectives(toy_space), 0,
                      {**{"inner_evaluations": 200, "inner_population": 20, "candidates": 40, "front_mutations": 10,
                          "mc_samples": 16}, "population": 8})
    g = s.ask()
    F = np.column_stack([g[:, 2:].sum(axis=1), -g[:, 2:].sum(axis=1) + g[:, 0]]) / 12.0
    s.tell(g, F)
    batch = s.ask()
    keys = toy_space.keys(batch)
    assert len(batch) == 8 and len(set(keys)) == 8 and not set(keys) & s.known


def test_the_botorch_backend_needs_botorch(toy_space):
    import importlib.util

    import pytest

    from linas.errors import ConfigError

    if importlib.util.find_spec("botorch") is not None:
        pytest.skip("botorch is installed")
    with pytest.raises(ConfigError, match="backend 'botorch' needs BoTorch"):
        make_strategy("mobo", two_objectives(toy_space), 0, {"backend": "botorch"})


def test_the_botorch_backend_proposes_new_distinct_networks_deterministically(toy_space):
    import pytest

    pytest.importorskip("botorch")
    options = {"inner_evaluations": 200, "inner_population": 20, "candidates": 30, "front_mutations": 10,
               "mc_samples": 16, "population": 6, "backend": "botorch"}

    def batch():
        s = make_strategy("mobo", two_objectives(toy_space), 0, options)
        g = s.ask()
        s.tell(g, np.column_stack([g[:, 2:].sum(axis=1), -g[:, 2:].sum(axis=1) + g[:, 0]]) / 12.0)
        return s, s.ask()

    s, first = batch()
    keys = toy_space.keys(first)
    assert len(set(keys)) == 6 and not set(keys) & s.known
    assert toy_space.keys(batch()[1]) == keys
