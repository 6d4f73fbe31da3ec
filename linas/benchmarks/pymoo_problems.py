"""pymoo's multi-objective test problems (ZDT, DTLZ, ...) as evaluators over a grid space.

Level ``i`` of variable ``x_j`` maps to ``xl_j + i / (levels - 1) * (xu_j - xl_j)`` of the
problem's box; objectives are ``f1..fm`` (all minimized).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ConfigDict
from pymoo.problems import get_problem

from linas import registry
from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace


@evaluators.register("pymoo_problem")
class PymooProblem(Evaluator):
    """``evaluator: {name: pymoo_problem, options: {problem: zdt1}}`` over ``space: {name: grid}``."""

    class Options(registry.Options):
        """``problem`` and any keyword arguments of pymoo's ``get_problem`` (e.g. ``n_obj``)."""

        model_config = ConfigDict(extra="allow")
        problem: str = "zdt1"

    def __init__(self, space: SearchSpace, problem: str = "zdt1", **problem_options: Any) -> None:
        super().__init__(space)
        try:
            self.problem = get_problem(problem, n_var=len(space), **problem_options)
        except Exception as exc:  # pymoo raises plain Exceptions for unknown names
            raise ConfigError(f"evaluator 'pymoo_problem': cannot build '{problem}': {exc}") from None
        self.name = problem
        self.options = problem_options
        self.metrics = tuple(Objective(f"f{j + 1}", "min") for j in range(self.problem.n_obj))
        self._levels = space.n_choices - 1

    @property
    def identity(self) -> str:
        return f"pymoo:{self.name}:{sorted(self.options.items())}:{self.space.name}"

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        idx = self.space.from_config(config)
        x = self.problem.xl + idx / self._levels * (self.problem.xu - self.problem.xl)
        f = np.atleast_2d(self.problem.evaluate(np.atleast_2d(x), return_values_of=["F"]))[0]
        return {f"f{j + 1}": float(v) for j, v in enumerate(f)}
