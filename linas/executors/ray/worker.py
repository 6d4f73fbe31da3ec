"""The body of one Ray worker, and what the driver needs to tell its failures apart."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from linas.errors import ConfigError, LinasError
from linas.evaluator import Evaluator, Outcome


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'linas[ray]'") from None
    return ray


class EvaluatorWorker:
    """The body of one Ray actor: builds the evaluator once and measures networks with it.

    ``options`` were validated by the driver (``evaluators.options``), so building fails
    here only for what the worker's machine lacks (files, devices, memory). It runs in
    the actor's main thread, so :meth:`Evaluator.guarded` enforces the timeout there with
    SIGALRM exactly as in process.
    """

    def __init__(self, name: str, evaluator_cls: type[Evaluator], space: Any, options: Mapping[str, Any]) -> None:
        self.error: str | None = None
        self.evaluator: Evaluator | None = None
        try:
            self.evaluator = evaluator_cls(space, **dict(options))
        except LinasError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
            self.error = f"evaluator '{name}' could not be built on a Ray worker: {type(exc).__name__}: {exc}"

    def describe(self) -> dict[str, Any]:
        """What the driver needs to know: the evaluator's identity and metrics, or why it failed."""
        if self.evaluator is None:
            return {"error": self.error}
        return {"error": None, "identity": self.evaluator.identity, "metrics": tuple(self.evaluator.metrics),
                "pid": os.getpid(), "host": socket.gethostname()}

    def evaluate(self, config: Mapping[str, Any], timeout: float | None, fidelity: float = 1.0) -> Outcome:
        assert self.evaluator is not None
        return self.evaluator.guarded(config, timeout, fidelity)


def worker_lost(ray: Any) -> tuple[type[BaseException], ...]:
    """The errors that mean the worker (not the evaluation) failed: retry elsewhere."""
    e = ray.exceptions
    return tuple(getattr(e, n) for n in ("RayActorError", "WorkerCrashedError", "ObjectLostError",
                                         "NodeDiedError", "OutOfMemoryError") if hasattr(e, n))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
