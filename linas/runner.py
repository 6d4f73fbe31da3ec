"""The search loop: ask -> evaluate (or look up) -> record -> tell, with hypervolume.

Every strategy runs through :func:`run_search`, so budgets, deduplication, caching,
persistence, resume and hypervolume accounting are the same for all of them.

- The budget counts successful validations of distinct networks, exactly.
- A network the run's archive already holds is never validated again; its stored
  result is told to the strategy at no cost. A failed evaluation is stored and told
  as NaN; it does not count as a validation.
- Each evaluation is committed the moment it completes. Resume replays the strategy
  from its seed against the archive (strategies are deterministic), so an
  interrupted run ends with the same archive as an uninterrupted one on the same
  machine and library versions. Elsewhere, floating point may make a model-based
  strategy's replay propose other networks than the archive holds; the runner then
  tells it the archived batches it skipped (``Strategy.absorb``), so it goes on with
  everything validated, and records the divergence in the run's metadata.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from linas.archive import EvaluationCache, Record, RunArchive
from linas.evaluator import Evaluator
from linas.hypervolume import HypervolumeTracker, Normalizer
from linas.objectives import Objective, to_minimization
from linas.space import SearchSpace
from linas.strategies.base import Strategy

#: Asks in a row that bring no new network before a run is declared exhausted.
MAX_STALE_ASKS = 50


@dataclass
class RunResult:
    run_dir: Path
    n_validated: int
    n_failed: int
    hypervolume: float
    resumed: bool
    exhausted: bool


def package_versions() -> dict[str, str]:
    names = ["linas", "numpy", "scipy", "pymoo", "scikit-learn", "pandas", "torch", "timm", "transformers",
             "sacrebleu"]
    out = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def run_search(run_dir: str | Path, space: SearchSpace, evaluator: Evaluator, strategy: Strategy,
               objectives: list[Objective], bounds: list[tuple[float, float]], budget: int,
               settings: dict[str, Any], reference_point: list[float] | None = None,
               cache: EvaluationCache | None = None, timeout: float | None = None,
               progress: bool = True, description: str = "", details: dict[str, Any] | None = None
               ) -> RunResult:
    """Run (or resume) one search until ``budget`` networks are validated."""
    archive = RunArchive(run_dir)
    try:
        versions, host = package_versions(), machine()
        resumed = archive.bind(settings, {"seed": strategy.seed, "versions": versions,
                                          "machine": host, "evaluator": evaluator.identity,
                                          "space": {"name": space.name, "fingerprint": space.fingerprint()},
                                          "objectives": [o.__dict__ for o in objectives], **(details or {})})
        # Each session of the run (a resume may run elsewhere): when, where, with what.
        sessions = archive.meta().get("sessions", [])
        archive.set_meta("sessions", [*sessions, {"started": time.time(), "machine": host, "versions": versions,
                                                  "validated_before": archive.n_validated}])
        tracker = HypervolumeTracker(Normalizer(objectives, bounds), reference_point)
        for r in archive.records():
            if r.ok:
                tracker.add([r.metrics[o.name] for o in objectives])
        loop = _Loop(archive, space, evaluator, strategy, objectives, tracker, cache, timeout)
        loop.wall_time_before = float(archive.meta().get("wall_time_s", 0.0))
        bar = tqdm(total=budget, initial=min(archive.n_validated, budget), desc=description or str(run_dir),
                   disable=not progress, leave=False, dynamic_ncols=True)
        loop.on_validated = lambda: (bar.update(1), bar.set_postfix(hv=f"{tracker.value:.4f}"))
        exhausted = loop.run(budget)
        bar.close()
        archive.set_meta("status", "exhausted" if exhausted else "complete")
        archive.set_meta("budget", budget)
        records = archive.records()
        return RunResult(Path(run_dir), archive.n_validated, sum(not r.ok for r in records), tracker.value,
                         resumed, exhausted)
    finally:
        archive.close()


class _Loop:
    def __init__(self, archive: RunArchive, space: SearchSpace, evaluator: Evaluator, strategy: Strategy,
                 objectives: list[Objective], tracker: HypervolumeTracker, cache: EvaluationCache | None,
                 timeout: float | None) -> None:
        self.archive, self.space, self.evaluator, self.strategy = archive, space, evaluator, strategy
        self.objectives, self.tracker, self.cache, self.timeout = objectives, tracker, cache, timeout
        self.on_validated = lambda: None
        self.wall_time_before = 0.0  # of earlier sessions of this run
        self._replaying = len(archive) > 0  # until the strategy has been told every archived network
        self._started = time.perf_counter()

    def run(self, budget: int) -> bool:
        """Returns True when the strategy stopped proposing new networks before the budget."""
        stale = 0
        while self.archive.n_validated < budget:
            genomes = self.strategy.ask()
            keys = self.space.keys(genomes)
            if self._replay_diverged(keys):
                continue  # the strategy was told what it skipped: ask again
            self._store_diagnostics()
            before = len(self.archive)
            self._validate_new(genomes, keys, budget)
            if self.archive.n_validated >= budget:
                break  # the last batch may be cut short; nothing is told after the budget
            stale = stale + 1 if len(self.archive) == before else 0
            if stale >= MAX_STALE_ASKS:
                return True
            self.strategy.tell(genomes, self._objective_rows(keys))
            self._store_diagnostics()
        return False

    def _replay_diverged(self, keys: list[str]) -> bool:
        """Whether the archive holds networks the strategy was never told and no longer asks
        for (its replay of an earlier session took another path). A strategy that can is
        told them, batch by batch in their original steps, and True is returned."""
        if not self._replaying or all(k in self.archive for k in keys):
            return False  # not resuming, or a replayed batch
        untold = [r for r in self.archive.records() if r.key not in self.strategy.known]
        if not untold:
            self._replaying = False
            return False
        asked = set(keys)
        if all(r.key in asked for r in untold):
            return False  # the rest of an interrupted batch
        self._replaying = False
        steps: dict[int, list[Record]] = {}
        for r in untold:
            steps.setdefault(r.step, []).append(r)
        batches = [(np.array([self.space.from_key(r.key) for r in rs], dtype=np.int64),
                    self._objective_rows([r.key for r in rs])) for rs in steps.values()]
        at_step = self.strategy.step
        absorbed = self.strategy.absorb(batches)
        note = {"at_step": at_step, "untold_networks": len(untold), "absorbed": absorbed}
        self.archive.set_meta("replay_diverged", note)
        if not absorbed:
            print(f"linas: {self.archive.run_dir}: the resumed strategy proposes other networks than its archive "
                  f"holds (another machine or library versions?); {len(untold)} archived networks go on untold "
                  f"to it", file=sys.stderr)
        return absorbed

    def _validate_new(self, genomes: np.ndarray, keys: list[str], budget: int) -> None:
        todo, queued = [], set()
        for g, k in zip(genomes, keys):
            if k not in self.archive and k not in queued:
                todo.append((g, k))
                queued.add(k)
        # Validate in order, in chunks no larger than the budget left, so that failures
        # are replaced by the next new networks of the batch and the budget is exact.
        while todo and self.archive.n_validated < budget:
            chunk, todo = todo[: budget - self.archive.n_validated], todo[budget - self.archive.n_validated:]
            self._evaluate(chunk)

    def _evaluate(self, chunk: list[tuple[np.ndarray, str]]) -> None:
        configs = [self.space.to_config(g) for g, _ in chunk]
        pending = []
        for (g, key), config in zip(chunk, configs):
            hit = self.cache.get(self.evaluator.identity, key) if self.cache else None
            if hit is not None:
                self._record(key, config, hit[0], None, hit[1], cached=True)
            else:
                pending.append((key, config))
        if not pending:
            return
        for i, outcome in self.evaluator.evaluate([c for _, c in pending], self.timeout):
            key, config = pending[i]
            if outcome.ok and self.cache is not None:
                self.cache.put(self.evaluator.identity, key, outcome.metrics, outcome.wall_time)
            self._record(key, config, outcome.metrics, outcome.error, outcome.wall_time, cached=False)

    def _record(self, key: str, config: dict, metrics: dict, error: str | None, wall_time: float,
                cached: bool) -> Record:
        hv = None
        if error is None:
            hv = self.tracker.add([metrics[o.name] for o in self.objectives])
        record = self.archive.add(key, config, metrics, error, wall_time, cached, self.strategy.step, hv)
        # Total wall time of the run over all its sessions, kept current so a kill loses none.
        self.archive.set_meta("wall_time_s", self.wall_time_before + time.perf_counter() - self._started)
        if error is None:
            self.on_validated()
        return record

    def _objective_rows(self, keys: list[str]) -> np.ndarray:
        rows = np.full((len(keys), len(self.objectives)), np.nan)
        for i, k in enumerate(keys):
            r = self.archive.get(k)
            if r is not None and r.ok:
                rows[i] = to_minimization(self.objectives, [r.metrics])[0]
        return rows

    def _store_diagnostics(self) -> None:
        for entry in self.strategy.diagnostics:
            entry = dict(entry)
            name = self.objectives[entry.pop("objective")].name
            self.archive.add_diagnostic(entry.pop("step"), name, entry)
        self.strategy.diagnostics.clear()
