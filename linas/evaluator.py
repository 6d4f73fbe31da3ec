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

**Fidelity.** An evaluator that can measure a network more cheaply and less exactly sets
``supports_fidelity = True`` and takes a ``fidelity`` keyword in ``evaluate_one``: a
number in (0, 1], roughly the share of a full evaluation's cost it spends (e.g. the share
of the validation images used); 1 is the full evaluation, whose results are exactly those
of a call without the keyword. ``evaluate(..., fidelity=f)`` with ``f < 1`` on any other
evaluator is refused with a :class:`~linas.errors.ConfigError`. Results at ``f < 1`` are
cached under :func:`fidelity_identity`, never mixed with full ones.

**Vectorized evaluators.** An evaluator whose networks cost microseconds each (a predictor,
lookup tables) may set ``vectorized = True`` and implement :meth:`Evaluator.evaluate_batch`:
a chunk of networks measured in one call, one :class:`Outcome` per network, with exactly
the metrics ``evaluate_one`` gives each of them (whatever else is in the chunk). The runner
then records the chunk's full-fidelity evaluations in one archive transaction, all
completed at the same moment (:meth:`Evaluator.guarded_batch` checks them). That path has
**no per-network timeout** (an experiment's ``timeout`` does not apply to it); a call that
raises falls back to one guarded evaluation per network. Low-fidelity evaluations always
take the per-network path.
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

from linas.errors import ConfigError
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
    #: Whether ``evaluate_one`` takes a ``fidelity`` keyword in (0, 1] (see the module docstring).
    supports_fidelity: ClassVar[bool] = False
    #: Whether :meth:`evaluate_batch` measures a whole chunk in one call (see the module docstring).
    vectorized: ClassVar[bool] = False

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @property
    @abstractmethod
    def identity(self) -> str:
        """Distinguishes evaluators whose measurements differ (used as the cache key)."""

    @abstractmethod
    def evaluate_one(self, config: Mapping[str, Any]) -> Mapping[str, float]:
        """Measure one network; return ``{metric name: value}``."""

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None, fidelity: float = 1.0
                 ) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(position in configs, outcome)`` as each evaluation completes (at ``fidelity``)."""
        self.check_fidelity(fidelity)
        for i, config in enumerate(configs):
            yield i, self.guarded(config, timeout, fidelity)

    def check_fidelity(self, fidelity: float) -> None:
        """ConfigError unless ``fidelity`` is 1, or in (0, 1) for an evaluator that supports it."""
        if not (isinstance(fidelity, numbers.Real) and 0 < fidelity <= 1):
            raise ConfigError(f"fidelity must be a number in (0, 1], not {fidelity!r}")
        if fidelity < 1 and not self.supports_fidelity:
            raise ConfigError(f"evaluator {self.identity.split(':', 1)[0]!r} has no lower fidelity "
                              f"(asked for {fidelity:g}); only full evaluations")

    def guarded(self, config: Mapping[str, Any], timeout: float | None = None, fidelity: float = 1.0) -> Outcome:
        """Run :meth:`evaluate_one` and turn every way it can fail into a failed outcome."""
        start = time.perf_counter()
        try:
            with time_limit(timeout):
                # A full evaluation calls evaluate_one exactly as evaluators without fidelity expect.
                returned = self.evaluate_one(config) if fidelity >= 1 else self.evaluate_one(config, fidelity=fidelity)
            metrics, error = check_metrics(returned, self.metrics)
        except EvaluationTimeout:
            metrics, error = {}, f"timed out after {timeout:g} s"
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of user code (sys.exit too) is recorded
            metrics, error = {}, f"{type(exc).__name__}: {exc}"
        return Outcome(metrics if error is None else {}, error, time.perf_counter() - start)

    def evaluate_batch(self, configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Measure every network of ``configs`` in one call (full fidelity): one :class:`Outcome`
        per config, in order, each with the metrics :meth:`evaluate_one` returns for it, to the
        bit. Implemented by evaluators that declare ``vectorized = True``."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluate_batch")

    def guarded_batch(self, configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """:meth:`evaluate_batch`, checked like :meth:`guarded`: each outcome's metrics go through
        :func:`check_metrics`, and each takes an equal share of the call's wall time. A call that
        raises, or returns another number of outcomes, is replaced by :meth:`guarded` on each
        network (without timeout), so one bad network fails alone. No timeout applies here."""
        start = time.perf_counter()
        try:
            outcomes = list(self.evaluate_batch(configs))
            if len(outcomes) != len(configs):
                raise ValueError(f"evaluate_batch returned {len(outcomes)} outcomes for {len(configs)} networks")
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - measured one at a time instead, each failure recorded
            return [self.guarded(c) for c in configs]
        share = (time.perf_counter() - start) / max(len(configs), 1)
        checked = []
        for outcome in outcomes:
            if outcome.error is None:
                metrics, error = check_metrics(outcome.metrics, self.metrics)
            else:
                metrics, error = {}, str(outcome.error)
            checked.append(Outcome(metrics if error is None else {}, error, share))
        return checked

    def close(self) -> None:
        """Release what the evaluator holds (workers, files)."""


def fidelity_identity(identity: str, fidelity: float) -> str:
    """The cache key of an evaluator's measurements at ``fidelity``: its identity at 1, else
    the identity with the fidelity appended (``repr``, so 1/9 and 0.111 never share one)."""
    return identity if fidelity >= 1 else f"{identity}:fidelity={float(fidelity)!r}"


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
