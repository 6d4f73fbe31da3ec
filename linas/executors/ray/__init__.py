"""The ``ray`` executor: evaluations spread over the workers of a Ray cluster.

Each worker is a Ray actor that builds the evaluator once (supernet, data, device) and
keeps it for its whole life, so a validation costs only itself. The driver gives one
network at a time to each idle worker and yields every outcome the moment it arrives,
so one slow evaluation never holds up the others, and the loop (:mod:`linas.runner`)
writes it to the archive at once. Strategies and archives do not know which backend
ran: the executor has the :class:`~linas.evaluator.Evaluator` interface and the same
``identity`` as the in-process evaluator, so caches and resumes work across backends.

Fault tolerance:

- a worker that dies (process crash, out of memory, lost node) is replaced by a new
  actor and its evaluation is given to the next idle worker, at most ``max_retries``
  times; after that the network is recorded as failed with the reason;
- an evaluation past the run's ``timeout`` is stopped inside the worker (a failed
  outcome, as in process); one that does not stop within a grace period (stuck in C
  code) gets its worker killed and replaced, and is recorded as timed out;
- a driver that dies loses only the evaluations in flight: everything that arrived is
  in the archive, and running the same command again resumes with the budget left.

Config (``executor`` in an experiment YAML)::

    executor:
      name: ray
      options:
        address: null          # null: start a local Ray instance; "auto": join the cluster
                               # started here with `ray start`; "ray://host:10001": Ray client
        num_workers: 4         # actors (default: as many as the cluster's CPUs/GPUs hold)
        num_cpus: 1            # per worker
        num_gpus: 0            # per worker (fractions share a GPU)
        max_retries: 2         # re-runs of an evaluation whose worker died
        init_options: {}       # extra ray.init arguments (e.g. runtime_env, namespace)

Ray is an optional dependency (``pip install 'linas[ray]'``), imported only when this
executor is built, so the rest of linas never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linas.executors import executors
from linas.executors.ray.options import RayOptions
from linas.space import SearchSpace

__all__ = ["RayOptions", "ray_executor"]


@executors.register("ray", options=RayOptions)
def ray_executor(evaluator: str, space: SearchSpace, evaluator_options: Mapping[str, Any], **options: Any):
    """Evaluate on a pool of Ray actors (options: :class:`RayOptions`, checked before Ray is imported)."""
    from linas.executors.ray.pool import RayEvaluator

    return RayEvaluator(evaluator, space, evaluator_options, RayOptions(**options))
