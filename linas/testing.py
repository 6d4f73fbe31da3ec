"""Helpers for testing strategies, evaluators and runs (used by linas's own test suite,
and by anyone writing a component: build a problem or a run spec in one line).

Example::

    problem = two_objectives(space)                 # minimize f1, f2 with unit bounds
    spec = run_spec("random", seed=0, budget=100, objectives=evaluator.metrics[:2],
                    bounds=[(60, 80), (10, 160)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linas.objectives import Constraint, Objective
from linas.space import SearchSpace
from linas.spec import Problem, RunSpec


def two_objectives(space: SearchSpace) -> Problem:
    """A problem over ``space`` with two minimization objectives and unit bounds."""
    return Problem.simple(space, 2)


def run_spec(strategy: str, seed: int, budget: int, objectives: Sequence[Objective],
             bounds: Sequence[tuple[float, float]] | None = None, options: Mapping[str, Any] | None = None,
             constraints: Sequence[Constraint] = (), reference_point: Sequence[float] | None = None,
             space: SearchSpace | None = None, evaluator: str = "test", label: str | None = None) -> RunSpec:
    """A run spec for tests: objectives get ``bounds`` when given."""
    objs = tuple(o.with_bounds(b) for o, b in zip(objectives, bounds)) if bounds else tuple(objectives)
    return RunSpec(experiment="test",
                   space={"name": space.name if space else "test", "options": {},
                          "fingerprint": space.fingerprint() if space else None},
                   evaluator={"name": evaluator, "options": {}, "identity": evaluator}, objectives=objs,
                   reference_point=tuple(reference_point or (1.0,) * len(objs)),
                   strategy={"name": strategy, "options": dict(options or {}), "label": label}, seed=seed,
                   budget=budget, constraints=tuple(constraints))
