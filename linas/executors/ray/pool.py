"""The driver side of the ``ray`` executor: a pool of evaluator workers, scheduling and faults."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linas.errors import ConfigError, LinasError
from linas.evaluator import Evaluator, Outcome, evaluators
from linas.executors.ray.options import RayOptions
from linas.executors.ray.worker import EvaluatorWorker, first_line, import_ray, worker_lost
from linas.space import SearchSpace

log = logging.getLogger(__name__)

#: Extra seconds a worker gets past the evaluation timeout to stop by itself before it is killed.
KILL_GRACE_MIN = 10.0
KILL_GRACE_FRACTION = 0.1


@dataclass
class _Slot:
    """One worker: its actor and what it is doing (``ref`` is None when it is idle)."""

    actor: Any
    ref: Any = None
    starting: bool = True  # ``ref`` is the actor's describe() call
    job: int | None = None  # the position of the network it evaluates; None for a discarded one
    since: float = 0.0


class RayEvaluator(Evaluator):
    """An evaluator whose evaluations run on a pool of Ray actors (see the module docstring).

    Built by the ``ray`` executor; connects to (or starts) Ray, starts the workers and
    waits for the first one to build the evaluator, so a bad evaluator option or a
    cluster without the requested resources is reported before the search starts.
    """

    def __init__(self, evaluator_name: str, space: SearchSpace, evaluator_options: Mapping[str, Any],
                 settings: RayOptions | None = None) -> None:
        super().__init__(space)
        self.settings = settings or RayOptions()
        self.evaluator_name = evaluator_name
        self._evaluator_cls = evaluators.get(evaluator_name)
        self.supports_fidelity = self._evaluator_cls.supports_fidelity  # type: ignore[misc] - the workers' evaluator's
        # Checked here, so a bad option is reported before any worker starts.
        self._evaluator_options = evaluators.options(evaluator_name, evaluator_options)
        self._ray = import_ray()
        self._owns_ray = False
        self._slots: list[_Slot] = []
        self._identity = ""
        self.replaced = 0  # workers replaced after they died or hung (for logs and tests)
        self._start_failures = 0  # workers in a row that died before they were ready
        try:
            self._connect()
            self._actor_cls = self._ray.remote(**self._actor_options())(EvaluatorWorker)
            n = self.settings.num_workers or self._default_workers()
            self._slots = [self._start() for _ in range(n)]
            first = self._wait_first_worker()
            self._identity = first["identity"]
            self.metrics = first["metrics"]  # type: ignore[misc] - known only once a worker built it
        except BaseException:
            self.close()
            raise

    # -- the Evaluator interface -------------------------------------------------------

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def num_workers(self) -> int:
        return len(self._slots)

    def evaluate_one(self, config: Mapping[str, Any]) -> Mapping[str, float]:
        for _, outcome in self.evaluate([config]):
            if not outcome.ok:
                raise RuntimeError(outcome.error)
            return outcome.metrics
        raise AssertionError("unreachable")

    def evaluate(self, configs: Sequence[Mapping[str, Any]], timeout: float | None = None, fidelity: float = 1.0
                 ) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(position in configs, outcome)`` as each evaluation completes, in any order."""
        self.check_fidelity(fidelity)
        ray = self._ray
        configs = list(configs)
        queue = deque(range(len(configs)))  # networks not yet given to a worker, in order
        deaths = [0] * len(configs)
        left = len(configs)
        try:
            while left:
                now = time.monotonic()
                for slot in self._slots:
                    if slot.ref is None and queue:
                        slot.job = queue.popleft()
                        slot.ref = slot.actor.evaluate.remote(configs[slot.job], timeout, fidelity)
                        slot.since = now
                refs = {slot.ref: slot for slot in self._slots if slot.ref is not None}
                done, _ = ray.wait(list(refs), num_returns=1, timeout=self._wait_time(timeout, now))
                if not done:
                    for job, outcome in self._stop_overdue(timeout):
                        left -= 1
                        yield job, outcome
                    continue
                slot = refs[done[0]]
                ref, job, starting, since = slot.ref, slot.job, slot.starting, slot.since
                slot.ref, slot.job, slot.starting = None, None, False
                try:
                    result = ray.get(ref)
                except worker_lost(ray) as exc:
                    if starting:
                        self._start_failed(slot, exc)
                        continue
                    self._replace(slot, first_line(exc))
                    if job is None:
                        continue
                    deaths[job] += 1
                    if deaths[job] <= self.settings.max_retries:
                        log.warning("a Ray worker died during an evaluation (%s); retrying it (%d of %d)",
                                    first_line(exc), deaths[job], self.settings.max_retries)
                        queue.appendleft(job)
                        continue
                    left -= 1
                    yield job, Outcome({}, f"the Ray worker died during the evaluation, {deaths[job]} times "
                                           f"(last: {first_line(exc)})", time.monotonic() - since)
                    continue
                except ray.exceptions.RayError as exc:  # the task itself failed (e.g. an unpicklable result)
                    if starting:
                        raise LinasError(f"executor 'ray': a worker could not start: {first_line(exc)}") from None
                    if job is None:
                        continue
                    left -= 1
                    yield job, Outcome({}, f"{type(exc).__name__}: {first_line(exc)}", time.monotonic() - since)
                    continue
                if starting:
                    self._check_started(result)
                    self._start_failures = 0
                elif job is not None:
                    left -= 1
                    yield job, result
        finally:
            # Closed early (the caller stopped iterating): evaluations still running are
            # discarded when they end; their workers take new work only after that.
            for slot in self._slots:
                if not slot.starting:
                    slot.job = None

    def close(self) -> None:
        """Stop the workers, and the local Ray instance if this executor started it."""
        ray = getattr(self, "_ray", None)
        if ray is None:
            return
        for slot in self._slots:
            try:
                ray.kill(slot.actor)
            except Exception:  # noqa: BLE001 - already dead, or Ray already down
                pass
        self._slots = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

    # -- internals -----------------------------------------------------------------

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():  # the caller connected already (a notebook, a test): use that
            log.info("using the Ray connection of this process")
            return
        kwargs: dict[str, Any] = {}
        if self.settings.address in (None, "local"):
            # "local" starts a new instance even when another is running on this machine.
            kwargs.update(address="local", include_dashboard=False)
        else:
            kwargs["address"] = self.settings.address
        kwargs.update(self.settings.init_options or {})
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here; the user gets one line
            hint = " (the Ray client needs: pip install 'ray[client]')" if isinstance(exc, ImportError) else ""
            raise LinasError(f"executor 'ray': could not start or join Ray at "
                             f"{self.settings.address or 'a new local instance'}: {first_line(exc)}{hint}"
                             ) from None
        self._owns_ray = True

    def _actor_options(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {"num_cpus": s.num_cpus, "num_gpus": s.num_gpus,
                                   "max_restarts": 0}  # a dead worker is replaced by the pool, not by Ray
        if s.resources:
            options["resources"] = dict(s.resources)
        return options

    def _default_workers(self) -> int:
        """As many workers as the cluster's resources hold (at least one)."""
        available = self._ray.cluster_resources()
        s = self.settings
        fits = []
        if s.num_cpus > 0:
            fits.append(int(available.get("CPU", 0) // s.num_cpus))
        if s.num_gpus > 0:
            fits.append(int(available.get("GPU", 0) // s.num_gpus))
        for name, amount in (s.resources or {}).items():
            if amount > 0:
                fits.append(int(available.get(name, 0) // amount))
        return max(1, min(fits)) if fits else 1

    def _start(self) -> _Slot:
        actor = self._actor_cls.remote(self.evaluator_name, self._evaluator_cls, self.space,
                                       self._evaluator_options)
        return _Slot(actor, actor.describe.remote(), starting=True, since=time.monotonic())

    def _wait_first_worker(self) -> dict[str, Any]:
        ray = self._ray
        deadline = time.monotonic() + self.settings.start_timeout
        pending = {slot.ref: slot for slot in self._slots}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                break
            slot = pending.pop(done[0])
            try:
                info = ray.get(done[0])
            except ray.exceptions.RayError as exc:
                self._start_failed(slot, exc)
                pending[slot.ref] = slot
                continue
            if info["error"]:
                raise ConfigError(info["error"])
            slot.ref, slot.starting = None, False
            self._start_failures = 0
            log.info("Ray worker ready on %s (pid %s)", info["host"], info["pid"])
            return info
        raise LinasError(f"executor 'ray': no worker started within {self.settings.start_timeout:g} s; "
                         f"does the cluster have {self._request()} free per worker?")

    def _request(self) -> str:
        s = self.settings
        parts = [f"{s.num_cpus:g} CPU"] + ([f"{s.num_gpus:g} GPU"] if s.num_gpus else [])
        parts += [f"{v:g} {k}" for k, v in (s.resources or {}).items()]
        return ", ".join(parts)

    def _check_started(self, info: dict[str, Any]) -> None:
        if info["error"]:
            raise LinasError(f"executor 'ray': a replacement worker could not build the evaluator: "
                             f"{info['error']}")
        if info["identity"] != self._identity:
            raise LinasError(f"executor 'ray': workers disagree on the evaluator ({info['identity']} vs "
                             f"{self._identity}); do all nodes have the same code and data?")

    def _start_failed(self, slot: _Slot, exc: BaseException) -> None:
        """A worker died before it was ready: replace it, unless workers keep dying that way
        (a node that cannot hold the evaluator would otherwise be retried forever)."""
        self._start_failures += 1
        if self._start_failures > max(3, self.settings.max_retries + 1):
            raise LinasError(f"executor 'ray': workers die while starting ({self._start_failures} in a row): "
                             f"{first_line(exc)}")
        self._replace(slot, f"died while starting: {first_line(exc)}")

    def _replace(self, slot: _Slot, reason: str) -> None:
        """Kill a worker (if it still runs) and put a new one in its place."""
        try:
            self._ray.kill(slot.actor)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.replaced += 1
        log.warning("replacing a Ray worker: %s", reason)
        new = self._start()
        slot.actor, slot.ref, slot.starting, slot.job, slot.since = new.actor, new.ref, True, None, new.since

    def _grace(self, timeout: float) -> float:
        return max(KILL_GRACE_MIN, KILL_GRACE_FRACTION * timeout)

    def _wait_time(self, timeout: float | None, now: float) -> float | None:
        """Seconds until the next evaluation is overdue or workers are late to start (None: no limit)."""
        deadlines = []
        if timeout:
            deadlines += [s.since + timeout + self._grace(timeout) for s in self._slots
                          if s.ref is not None and not s.starting and s.job is not None]
        if all(s.starting for s in self._slots):
            deadlines.append(min(s.since for s in self._slots) + self.settings.start_timeout)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _stop_overdue(self, timeout: float | None) -> Iterator[tuple[int, Outcome]]:
        now = time.monotonic()
        if all(s.starting for s in self._slots) and \
                now - min(s.since for s in self._slots) >= self.settings.start_timeout:
            raise LinasError(f"executor 'ray': no worker started within {self.settings.start_timeout:g} s; "
                             f"does the cluster have {self._request()} free per worker?")
        if not timeout:
            return
        for slot in self._slots:
            if slot.ref is None or slot.starting or slot.job is None:
                continue
            if now - slot.since >= timeout + self._grace(timeout):
                job, since = slot.job, slot.since
                self._replace(slot, f"an evaluation did not stop {self._grace(timeout):g} s after its timeout")
                yield job, Outcome({}, f"timed out after {timeout:g} s (the Ray worker was stopped)", now - since)
