"""Search strategies, all driven by the same ask/tell loop (:mod:`linas.runner`).

A new strategy is one module in this package that subclasses
:class:`~linas.strategies.base.Strategy` and registers itself with
``@strategies.register("name")``.
"""

from linas.strategies.base import Strategy, make_strategy, strategies

__all__ = ["Strategy", "make_strategy", "strategies"]
