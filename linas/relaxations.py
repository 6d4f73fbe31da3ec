"""Continuous relaxations of a search space, for gradient-based search (``gradient`` strategy).

A relaxation turns a *distribution* over networks, one categorical per design variable,
into differentiable objectives:

- ``task(weights)``: the task term (normalized first objective, or a task loss such as
  cross-entropy) of the network mixed by ``weights``, a ``(variables, max choices)``
  tensor whose row ``j`` holds the weights of variable ``j``'s choices (zero padded).
  The strategy passes Gumbel-softmax samples (one-hot in the forward pass with
  straight-through, or soft) or the probabilities themselves;
- ``cost(probs)``: the *expected* cost (latency) under the categorical probabilities,
  computed analytically, in normalized units (0 at the objective's best bound, 1 at its
  worst), so one range of trade-off weights fits every problem.

Both are torch scalars with gradients to their inputs; torch is imported only by the
relaxations, never by ``linas`` itself. A relaxation is told the validated networks
before every round of proposals (:meth:`Relaxation.update`); those whose state is not a
function of them save it with :meth:`Relaxation.state_dict`.

Registered relaxations: ``surrogate`` (any space; below), ``mbv3_supernet``
(:mod:`supernets.mobilenetv3.relaxation`), ``hat_supernet``
(:mod:`supernets.transformer.relaxation`). A new one registers itself with
``@relaxations.register("name")`` in a module named in :data:`MODULES` or through the
``linas.relaxation`` entry-point group.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from linas.errors import ConfigError
from linas.registry import Options, Registry
from linas.spec import Problem

relaxations: Registry = Registry("relaxation")

#: Modules that register relaxations, imported when their name is first asked for
#: (they import torch and the supernets, which ``linas`` never imports by itself).
MODULES = {"mbv3_supernet": "supernets.mobilenetv3.relaxation",
           "hat_supernet": "supernets.transformer.relaxation"}


def relaxation_class(name: str) -> type[Relaxation]:
    """The class registered as ``name`` (importing its module on first use)."""
    module = MODULES.get(name)
    if module is not None and name not in relaxations._items:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"relaxation '{name}' needs {module}, which could not be imported ({exc})") from None
    return relaxations.get(name)


def relaxation_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The validated options of relaxation ``name`` (a one-line :class:`ConfigError` if bad)."""
    relaxation_class(name)
    return relaxations.options(name, options)


def make_relaxation(name: str, problem: Problem, seed: int, options: dict[str, Any] | None = None) -> Relaxation:
    relaxation_class(name)
    return relaxations.build(name, problem, seed, **dict(options or {}))


class Relaxation(ABC):
    """Differentiable task and expected cost of a categorical distribution over a space."""

    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, problem: Problem, seed: int) -> None:
        self.problem = problem
        self.space = problem.space
        self.seed = seed

    def update(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray) -> None:
        """Everything validated so far (canonical genomes, minimization rows, NaN for failures)."""

    @abstractmethod
    def task(self, weights: Any) -> Any:
        """Task term of the network mixed by ``weights`` (``(variables, max choices)`` tensor)."""

    @abstractmethod
    def cost(self, probs: Any) -> Any:
        """Expected normalized cost under the categorical probabilities ``probs``."""

    def state_dict(self) -> dict[str, Any]:
        """JSON state beyond what :meth:`update` is given (e.g. a data sampler's position)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# ---------------------------------------------------------------------- shared helpers
def choice_mask(space) -> np.ndarray:
    """``(variables, max choices)`` booleans: which entries of a weight matrix are real choices."""
    n = space.n_choices
    return np.arange(int(n.max()))[None, :] < n[:, None]


def active_probabilities(space, probs):
    """Probability that each variable is used, under independent categoricals ``probs`` (torch).

    A conditional variable is used when its (unconditional) parent takes a value at or above
    its threshold, so its probability is a sum of the parent's probabilities.
    """
    import torch

    act = torch.ones(len(space), dtype=probs.dtype)
    cond = space._conditional
    if len(cond):
        table = np.zeros((len(cond), probs.shape[1]))
        table[:, :space._active_table.shape[1]] = space._active_table
        parent = torch.as_tensor(space._parent)
        p_act = (probs[parent] * torch.as_tensor(table, dtype=probs.dtype)).sum(1)
        act = act.index_put((torch.as_tensor(cond),), p_act)
    return act


def expected_onehot(space, probs):
    """E[one-hot encoding] (:meth:`SearchSpace.encode`) under independent categoricals, as a
    flat torch vector in the encoding's column order: ``p(choice) * p(variable used)``."""
    import torch

    mask = torch.as_tensor(choice_mask(space))
    return (probs * active_probabilities(space, probs)[:, None])[mask]


def cost_objectives(problem: Problem, task_objective: int = 0) -> list[int]:
    """Indices of the objectives a cost term sums: every objective but the task's."""
    return [j for j in range(problem.n_objectives) if j != task_objective]


# ---------------------------------------------------------------------- surrogate
@relaxations.register("surrogate")
class SurrogateRelaxation(Relaxation):
    """Ridge models of the normalized objectives on the one-hot encoding of every validated
    network; under independent categoricals the expectation of a linear model is the model
    at the expected encoding, so task and cost are exact expectations for any space.

    ``task``: the first objective (``task_objective``); ``cost``: the sum of the others.
    Refitted (closed form, deterministic) on everything validated before each round.
    """

    class Options(Options):
        alpha: float = Field(1.0, gt=0)  # ridge penalty
        task_objective: int = Field(0, ge=0)  # the objective that is the task term

    def __init__(self, problem: Problem, seed: int, alpha: float = 1.0, task_objective: int = 0) -> None:
        super().__init__(problem, seed)
        if task_objective >= problem.n_objectives:
            raise ConfigError(f"relaxation 'surrogate': task_objective {task_objective} is not an objective "
                              f"(the problem has {problem.n_objectives})")
        self.alpha, self.task_objective = alpha, task_objective
        self.costs = cost_objectives(problem, task_objective)
        width = int(self.space.n_choices.sum())
        self.coef = np.zeros((width, 2))  # columns: task, cost
        self.intercept = np.zeros(2)

    def update(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray) -> None:
        ok = ~np.isnan(F).any(axis=1)
        if not ok.any():
            return
        Z = self.problem.normalize(F[ok])
        y = np.column_stack([Z[:, self.task_objective], Z[:, self.costs].sum(axis=1) if self.costs
                             else np.zeros(len(Z))])
        self.coef, self.intercept = ridge(self.space.encode(genomes[ok], "onehot"), y, self.alpha)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fitted (task, cost) of encoded networks."""
        return X @ self.coef + self.intercept

    def _expected(self, probs, column: int):
        import torch

        x = expected_onehot(self.space, probs)
        return x @ torch.as_tensor(self.coef[:, column], dtype=x.dtype) + float(self.intercept[column])

    def task(self, weights):
        return self._expected(weights, 0)

    def cost(self, probs):
        return self._expected(probs, 1)


def ridge(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression with an unpenalized intercept: ``(coef, intercept)``."""
    mx, my = X.mean(axis=0), y.mean(axis=0)
    Xc = X - mx
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - my))
    return coef, my - mx @ coef
