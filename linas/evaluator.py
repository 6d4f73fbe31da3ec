"""The evaluator protocol: measure a batch of networks, one outcome per network.

An evaluator declares the objectives it measures once (``metrics``), holds whatever is
expensive to load (a supernet, data) for its whole life, and names itself with an
``identity`` string that changes whenever its measurements would (checkpoint, data
subset, device...), so cached measurements are reused only where they are valid.

Subclasses implement :meth:`Evaluator.evaluate_one`; :meth:`Evaluator.evaluate` runs a
batch and yields each outcome as soon as it is known, so the caller can persist it at
once. An evaluation that raises (even ``SystemExit``; only ``KeyboardInterrupt`` stops
the search), returns a NaN, a missing metric or a value that is not a number, or runs past
its timeout is a failed :class:`Outcome` with its error text; it never stops the batch.
Metrics are stored as Python floats (numpy scalars are fine).

An evaluator's options are a pydantic model, ``Options`` (see :mod:`linas.registry`).
"""

from __future__ import annotations

import math
import numbers
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from linas.objectives import Objective
from linas.registry import Registry
from linas.space import SearchSpace

evaluators: Registry = Registry("evaluator", packages=["linas.benchmarks", "supernets"])


@dataclass
class Outcome:
    """The result of one evaluation: metrics, or the error that stopped it."""

    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    wall_time: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class EvaluationTimeout(Exception):
    pass


class Evaluator(ABC):
    """Base class of evaluators.

    Example::

        @evaluators.register("my_eval")
        class MyEvaluator(Evaluator):
            metrics = (Objective("accuracy", "max", "%"), Objective("latency", "min", "ms"))

            class Options(linas.registry.Options):
                scale: float = Field(1.0, gt=0)

            def __init__(self, space, scale=1.0):
                super().__init__(space)
                self.scale = scale

            @property
            def identity(self):
                return f"my_eval:scale={self.scale}"

            def evaluate_one(self, config):
                return {"accuracy": ..., "latency": ...}
    """

    metrics: ClassVar[tuple[Objective, ...]] = ()

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @property
    @abstractmethod
    def identity(self) -> str:
        """Distinguishes evaluators whose measurements differ (used as the cache key)."""

    @abstractmethod
    def evaluate_one(self, config: Mapping[str, Any]) -> Mapping[str, float]:
        """Measure one network; return ``{metric name: value}``."""

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None
                 ) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(position in configs, outcome)`` as each evaluation completes."""
        for i, config in enumerate(configs):
            yield i, self.guarded(config, timeout)

    def guarded(self, config: Mapping[str, Any], timeout: float | None = None) -> Outcome:
        """Run :meth:`evaluate_one` and turn every way it can fail into a failed outcome."""
        start = time.perf_counter()
        try:
            with time_limit(timeout):
                returned = self.evaluate_one(config)
            metrics, error = check_metrics(returned, self.metrics)
        except EvaluationTimeout:
            metrics, error = {}, f"timed out after {timeout:g} s"
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of user code (sys.exit too) is recorded
            metrics, error = {}, f"{type(exc).__name__}: {exc}"
        return Outcome(metrics if error is None else {}, error, time.perf_counter() - start)

    def close(self) -> None:
        """Release what the evaluator holds (workers, files)."""


def check_metrics(metrics: Any, expected: Sequence[Objective]) -> tuple[dict[str, float], str | None]:
    """``(metrics as Python floats, None)``, or ``({}, error text)`` when the evaluation
    returned no mapping, misses a declared metric, or returns a value that is not a real
    number (a string, even a numeric one, is not) or a declared metric that is not finite."""
    if not isinstance(metrics, Mapping):
        return {}, f"the evaluation returned a {type(metrics).__name__}, not a mapping of metrics"
    out = {}
    for name, value in metrics.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return {}, f"metric '{name}' is a {type(value).__name__} ({value!r}), not a number"
        out[str(name)] = float(value)
    for objective in expected:
        if objective.name not in out:
            return {}, f"metric '{objective.name}' missing from the evaluation"
        if not math.isfinite(out[objective.name]):
            return {}, f"metric '{objective.name}' is {out[objective.name]} ({type(metrics[objective.name]).__name__})"
    return out, None


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`EvaluationTimeout` in the block after ``seconds`` (main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise EvaluationTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_evaluator(name: str, space: SearchSpace, options: Mapping[str, Any] | None = None) -> Evaluator:
    """Build a registered evaluator (``evaluators.build``), reporting bad options as one line."""
    return evaluators.build(name, space, **dict(options or {}))
