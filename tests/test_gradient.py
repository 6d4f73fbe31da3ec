"""The ``gradient`` strategy and the ``surrogate`` relaxation (the contract suite runs it too)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from linas.errors import ConfigError
from linas.objectives import Objective
from linas.spec import Problem
from linas.strategies import make_strategy, strategies
from linas.strategies.gradient import bit_reversed, lambda_sweep

torch = pytest.importorskip("torch")


@pytest.fixture
def problem(toy_space):
    return Problem(toy_space, (Objective("top1", "max", bounds=(60, 80)), Objective("latency", "min", bounds=(10, 50))))


def toy_rows(space, genomes, rng):
    """Minimization rows with variable-specific effects plus noise (so the ridge fit is not trivial)."""
    X = space.encode(genomes, "onehot")
    a, b = rng.normal(size=X.shape[1]), rng.normal(size=X.shape[1])
    return np.column_stack([-(70 + X @ a + rng.normal(0, 0.3, len(X))), 30 + X @ b + rng.normal(0, 0.3, len(X))])


def random_probs(space, rng):
    from linas.relaxations import choice_mask

    mask = choice_mask(space)
    logits = np.where(mask, rng.normal(size=mask.shape) * 2, -np.inf)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return torch.as_tensor(p / p.sum(axis=1, keepdims=True), dtype=torch.float64)


def fitted_surrogate(problem, rng):
    from linas.relaxations import make_relaxation

    relax = make_relaxation("surrogate", problem, 0)
    g = problem.space.sample_unique(rng, 60)
    relax.update(g, toy_rows(problem.space, g, rng), np.zeros((len(g), 0)))
    return relax


def test_the_engine_imports_without_torch():
    code = ("import sys, linas, linas.relaxations, linas.strategies.gradient; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_analytic_expectation_equals_the_brute_force_average(problem, rng):
    relax = fitted_surrogate(problem, rng)
    space = problem.space
    probs = random_probs(space, rng)
    # Every genome of the product distribution (inactive variables included), weighted by its probability.
    genomes = np.array(list(itertools.product(*[range(n) for n in space.n_choices])))
    weight = np.prod(probs.numpy()[np.arange(len(space)), genomes], axis=1)
    assert weight.sum() == pytest.approx(1.0)
    predicted = relax.predict(space.encode(space.canonicalize(genomes), "onehot"))
    expected = weight @ predicted
    assert float(relax.task(probs)) == pytest.approx(expected[0], rel=1e-10, abs=1e-12)
    assert float(relax.cost(probs)) == pytest.approx(expected[1], rel=1e-10, abs=1e-12)


def test_one_hot_weights_give_the_fitted_value_of_that_network(problem, rng):
    relax = fitted_surrogate(problem, rng)
    space = problem.space
    for g in space.sample(rng, 20):
        w = torch.zeros(len(space), int(space.n_choices.max()), dtype=torch.float64)
        w[np.arange(len(space)), g] = 1.0
        fitted = relax.predict(space.encode(g[None], "onehot"))[0]
        assert float(relax.task(w)) == pytest.approx(fitted[0], abs=1e-12)
        assert float(relax.cost(w)) == pytest.approx(fitted[1], abs=1e-12)


def test_gradients_of_the_relaxed_loss_agree_with_finite_differences(problem, rng):
    strategy = make_strategy("gradient", problem, 0, {"population": 10, "gumbel": "off"})
    strategy.relaxation = fitted_surrogate(problem, rng)
    k = 3
    logits = torch.as_tensor(rng.normal(size=strategy.logits[k].shape), dtype=torch.float64)
    mask = strategy._mask
    real = logits[mask].clone().requires_grad_(True)

    def loss(values):
        full = torch.zeros(mask.shape, dtype=torch.float64).masked_scatter(mask, values)
        return strategy.loss(k, full)

    assert torch.autograd.gradcheck(loss, (real,), eps=1e-6, atol=1e-7)


def test_the_sweep_is_geometric_and_visited_in_bit_reversed_order():
    assert bit_reversed(8) == [0, 4, 2, 6, 1, 5, 3, 7]
    assert sorted(bit_reversed(11)) == list(range(11)) and bit_reversed(11)[:3] == [0, 8, 4]
    lam = lambda_sweep(0.1, 10.0, 5)
    assert np.allclose(lam, [0.1, 10 ** -0.5, 1, 10 ** 0.5, 10])


def test_larger_latency_weights_propose_faster_networks(problem, rng):
    strategy = make_strategy("gradient", problem, 0, {"population": 16, "lambdas": 4, "lambda_min": 0.01,
                                                       "lambda_max": 100.0, "gumbel": "off", "steps": 100,
                                                       "learning_rate": 0.3})
    g = strategy.ask()
    strategy.tell(g, toy_rows(problem.space, g, np.random.default_rng(5)))
    strategy.ask()
    relax = strategy.relaxation
    cost = [relax.predict(problem.space.encode(strategy.argmax(k)[None], "onehot"))[0, 1] for k in range(4)]
    task = [relax.predict(problem.space.encode(strategy.argmax(k)[None], "onehot"))[0, 0] for k in range(4)]
    assert cost[0] > cost[-1] and task[0] < task[-1]


def test_a_restored_strategy_asks_what_the_original_would(problem, rng):
    opts = {"population": 12, "steps": 4}
    a = make_strategy("gradient", problem, 1, opts)
    for _ in range(3):
        g = a.ask()
        a.tell(g, toy_rows(problem.space, g, rng))
    b = make_strategy("gradient", problem, 1, opts)
    b.restore(a.genomes, a.F, a.G, a.step, a.state_dict())
    assert problem.space.keys(a.ask()) == problem.space.keys(b.ask())


@pytest.mark.parametrize("options, message", [
    ({"relaxation": "nope"}, "unknown relaxation 'nope'"),
    ({"relaxation_options": {"alpha": -1}}, "alpha"),
    ({"relaxation_options": {"alhpa": 1}}, "option 'alhpa' is not known"),
    ({"lambda_min": 5, "lambda_max": 1}, "lambda_max 1 is below lambda_min 5"),
    ({"gumbel": "hard"}, "gumbel"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError) as err:
        strategies.options("gradient", options, n_args=2)
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("strategy 'gradient'")
