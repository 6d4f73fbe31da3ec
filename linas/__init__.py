"""linas: multi-objective neural architecture search with learned predictors.

The search engine (this package) never imports torch. Its pieces:

- :mod:`linas.space` / :mod:`linas.spaces`: discrete search spaces (OFA MobileNetV3, HAT);
- :mod:`linas.evaluator`: the evaluator protocol; :mod:`linas.benchmarks`: cheap evaluators;
- :mod:`linas.strategies`: random search, NSGA-II and LINAS behind one ask/tell loop;
- :mod:`linas.runner`, :mod:`linas.archive`: the loop, persisted in SQLite, resumable;
- :mod:`linas.hypervolume`, :mod:`linas.report`: hypervolume tracking, plots and tables.
"""

__version__ = "0.1.0"
