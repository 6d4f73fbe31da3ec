"""Where evaluations run: in this process (``local``, the default) or elsewhere (``ray``).

An executor turns an evaluator's name, space and options into an object with the
:class:`~linas.evaluator.Evaluator` interface, so strategies, the archive and the
loop run unchanged on any backend. A new backend is one module in this package that
registers a factory with ``@executors.register("name", options=Model)``, called as
``factory(evaluator_name, space, evaluator_options, **executor_options)`` with the
executor options validated by ``Model`` (a :class:`linas.registry.Options`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linas.evaluator import Evaluator, make_evaluator
from linas.registry import Registry
from linas.space import SearchSpace

executors: Registry = Registry("executor", packages=["linas.executors"])


@executors.register("local")
def local(evaluator: str, space: SearchSpace, evaluator_options: Mapping[str, Any]) -> Evaluator:
    """Evaluate in this process, one network after another."""
    return make_evaluator(evaluator, space, evaluator_options)


def make_executor(name: str, evaluator: str, space: SearchSpace, evaluator_options: Mapping[str, Any],
                  options: Mapping[str, Any] | None = None) -> Evaluator:
    """Build a registered executor (``executors.build``), reporting bad options as one line."""
    return executors.build(name, evaluator, space, evaluator_options, **dict(options or {}))
