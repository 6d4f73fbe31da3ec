"""The search loop: ask -> evaluate (or look up) -> record -> tell, with hypervolume.

Every strategy runs through :func:`run_search`, so budgets, deduplication, caching,
persistence, resume and hypervolume accounting are the same for all of them.

- The budget counts successful validations of distinct networks, exactly. A strategy
  that asks for evaluations at a fidelity ``f < 1`` (``Strategy.fidelity``) spends ``f``
  of the budget on each successful one; they are stored apart, told to it as they are,
  and never enter the hypervolume. A run never overspends: it ends when the next
  evaluation would.
- A network the run's archive already holds is never validated again; its stored
  result is told to the strategy at no cost. A failed evaluation is stored and told
  as NaN; it does not count as a validation.
- With constraints, every validated network is stored and counts toward the budget;
  only those inside every constraint can enter the front that the hypervolume measures.
- Each evaluation is committed the moment it completes (a vectorized evaluator's chunk,
  measured in one call, in one transaction: see :mod:`linas.evaluator`); a resumed run picks up the
  strategy where it stopped (:mod:`linas.resume`), so an interrupted run ends with the
  same archive as an uninterrupted one on the same machine and library versions.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from linas.archive import EvaluationCache, RunArchive
from linas.errors import ConfigError
from linas.evaluator import Evaluator, fidelity_identity
from linas.hypervolume import HypervolumeTracker, Normalizer
from linas.objectives import feasible, to_minimization, violations
from linas.resume import Resume
from linas.space import SearchSpace
from linas.spec import RunSpec
from linas.strategies.base import Strategy

#: Asks in a row that bring no new network before a run is declared exhausted.
MAX_STALE_ASKS = 50
#: Slack of budget comparisons: fractions of the budget add up with rounding errors.
BUDGET_EPS = 1e-9


@dataclass
class RunResult:
    run_dir: Path
    n_validated: int
    n_failed: int
    hypervolume: float
    resumed: bool
    exhausted: bool
    spent: float  # validations plus the fidelity of each successful low-fidelity evaluation


_VERSIONS: dict[str, str] | None = None


def package_versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        names = ["linas", "numpy", "scipy", "pymoo", "scikit-learn", "pandas", "torch", "timm", "transformers",
                 "sacrebleu"]
        _VERSIONS = {"python": sys.version.split()[0]}
        for n in names:
            try:
                _VERSIONS[n] = metadata.version(n)
            except metadata.PackageNotFoundError:
                pass
    return dict(_VERSIONS)


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def run_search(run_dir: str | Path, spec: RunSpec, space: SearchSpace, evaluator: Evaluator, strategy: Strategy,
               cache: EvaluationCache | None = None, timeout: float | None = None, progress: bool = True,
               description: str = "") -> RunResult:
    """Run (or resume) the run ``spec`` describes until its budget of networks is validated."""
    if strategy.min_fidelity < 1:  # refused before the run starts, by evaluators without fidelity
        evaluator.check_fidelity(strategy.min_fidelity)
    archive = RunArchive(run_dir)
    try:
        resumed = _bind(archive, spec, space, evaluator)
        budget = spec.budget
        tracker = HypervolumeTracker(Normalizer(spec.objectives), spec.reference_point)
        for r in archive.records():
            if r.ok:
                tracker.add([r.metrics[o.name] for o in spec.objectives], feasible(spec.constraints, r.metrics))
        loop = _Loop(archive, spec, space, evaluator, strategy, tracker, cache, timeout)
        bar = tqdm(total=budget, initial=min(archive.spent, budget), desc=description or str(run_dir),
                   disable=not progress, leave=False, dynamic_ncols=True)
        loop.on_validated = lambda cost=1: (bar.update(cost), bar.set_postfix(hv=f"{tracker.value:.4f}"))
        exhausted = loop.run(budget)
        bar.close()
        archive.set_meta("status", "exhausted" if exhausted else "complete")
        n_failed = sum(not r.ok for r in archive.records())
        return RunResult(Path(run_dir), archive.n_validated, n_failed, tracker.value, resumed, exhausted,
                         archive.spent)
    finally:
        archive.close()


def _bind(archive: RunArchive, spec: RunSpec, space: SearchSpace, evaluator: Evaluator) -> bool:
    """Tie the archive to the spec (refusing another run's archive); record this session."""
    versions, host = package_versions(), machine()
    stored = archive.meta()
    if "settings" in stored and "spec" not in stored:
        _check_legacy_defaults(archive, stored["settings"], spec)
    resumed = archive.bind(_resume_key(spec, stored), {
        "seed": spec.seed, "versions": versions, "machine": host, "evaluator": evaluator.identity,
        "space": {"name": space.name, "fingerprint": space.fingerprint()},
        "objectives": [o.to_dict() for o in spec.objectives], "experiment": spec.experiment,
        "targets": list(spec.targets), "budget": spec.budget})
    meta = archive.meta()
    _check_defaults(archive, meta.get("spec"), spec)
    stored_budget = int(meta.get("budget", 0))
    if spec.budget < stored_budget:
        # A smaller budget stops this session earlier but never lowers what the run was set to.
        print(f"linas: {archive.run_dir}: budget {spec.budget} is below the run's budget {stored_budget}; "
              f"the run keeps {stored_budget} and {archive.n_validated} validations", file=sys.stderr)
    budget = max(spec.budget, stored_budget)
    stored = RunSpec.from_dict({**spec.to_dict(), "budget": budget})
    archive.set_meta("spec", stored.to_dict())
    archive.set_meta("budget", budget)
    archive.set_meta("targets", list(spec.targets))
    archive.set_meta("sessions", [*meta.get("sessions", []), {
        "started": time.time(), "machine": host, "versions": versions, "validated_before": archive.n_validated}])
    return resumed


#: Option defaults that changed since run specs were first stored: what runs written
#: before then (archives without a spec) ran with when they did not name the option.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {"nsga2": {"operators": "choice"}}


def _check_legacy_defaults(archive: RunArchive, settings: dict, spec: RunSpec) -> None:
    """A run written before specs stored resolved options resumes only with the options it
    ran with: a default that changed since must be named with its old value."""
    name = spec.strategy["name"]
    given = dict(spec.strategy.get("options", {}))
    stored = settings.get("strategy", {}).get("options", {})
    for key, old in LEGACY_DEFAULTS.get(name, {}).items():
        if key not in stored and key not in given:
            raise ConfigError(f"{archive.run_dir}: this run of '{name}' was started when its default {key} was "
                              f"{old!r}; add {key}: {old} to its options to resume it as it ran")


def _resume_key(spec: RunSpec, stored: dict) -> dict:
    """The spec's resume key; for a run written before specs, options naming an old default
    (see LEGACY_DEFAULTS) are left out, as that run's settings left them out."""
    key = spec.resume_key()
    if "settings" in stored and "spec" in stored:
        # Options spelled another way (a default named, or left out) are the same run when they
        # resolve to the same values: the key takes the options as the run first gave them.
        before, now = _resolved(stored["spec"]), _resolved(spec.to_dict())
        if before is not None and now is not None and _comparable(now, before) == before:
            key["strategy"]["options"] = stored["settings"].get("strategy", {}).get("options", {})
        return key
    if "settings" not in stored:
        return key
    legacy = LEGACY_DEFAULTS.get(spec.strategy["name"], {})
    before = stored["settings"].get("strategy", {}).get("options", {})
    key["strategy"]["options"] = {k: v for k, v in key["strategy"]["options"].items()
                                  if k in before or legacy.get(k, object()) != v}
    return key


def _resolved(spec: dict | None) -> dict | None:
    """The strategy options of a stored or current spec with defaults filled in (None for runs
    written before specs stored them)."""
    return (spec or {}).get("strategy", {}).get("resolved")


def _comparable(now: dict, before: dict) -> dict:
    """``now`` as JSON, without options added since ``before`` and left unset (None): those
    change nothing."""
    return json.loads(json.dumps({k: v for k, v in now.items() if k in before or v is not None}))


def _check_defaults(archive: RunArchive, stored: dict | None, spec: RunSpec) -> None:
    """Refuse to resume a run whose strategy options, defaults filled in, are no longer what
    they were (a default changed between library versions would silently mix two searches)."""
    before, now = _resolved(stored), spec.strategy.get("resolved")
    if before is None or now is None:
        return
    now = _comparable(now, before)
    if now == before:
        return
    changed = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                        if json.loads(json.dumps(now.get(k))) != before.get(k))
    raise ConfigError(f"{archive.run_dir}: the options of strategy '{spec.strategy['name']}' changed since the run "
                      f"started ({changed}); give the old values in the config to resume it")


class _Loop:
    def __init__(self, archive: RunArchive, spec: RunSpec, space: SearchSpace, evaluator: Evaluator,
                 strategy: Strategy, tracker: HypervolumeTracker, cache: EvaluationCache | None,
                 timeout: float | None) -> None:
        self.archive, self.spec, self.space, self.evaluator = archive, spec, space, evaluator
        self.strategy, self.tracker, self.cache, self.timeout = strategy, tracker, cache, timeout
        self.on_validated = lambda cost=1: None
        self.wall_time_before = float(archive.meta().get("wall_time_s", 0.0))  # of earlier sessions
        self.resume = Resume(archive, strategy, self._rows)
        self._started = time.perf_counter()

    def run(self, budget: int) -> bool:
        """Returns True when the strategy stopped proposing new networks before the budget."""
        if self._left(budget) > BUDGET_EPS:
            self.resume.restore()
        stale = 0
        while self._left(budget) > BUDGET_EPS:
            genomes = self.strategy.ask()
            fidelity = float(self.strategy.fidelity)
            keys = self.space.keys(genomes)
            if self.resume.diverged(keys):
                continue  # the strategy was told what it skipped: ask again
            self._store_diagnostics()
            before = len(self.archive) + self.archive.n_low_fidelity
            self._validate_new(genomes, keys, budget, fidelity)
            # A batch is told once all of it is archived (the last one may be cut short by the
            # budget: it is asked again, identically, when a larger budget resumes the run).
            archived = all(self._archived(k, fidelity) for k in keys)
            if archived:
                self.strategy.tell(genomes, *self._rows(keys, fidelity))
                self._store_diagnostics()
                self.resume.save()
            # Not all archived: the budget left cannot pay for the rest of the batch.
            if not archived or self._left(budget) <= BUDGET_EPS:
                break
            stale = stale + 1 if len(self.archive) + self.archive.n_low_fidelity == before else 0
            if stale >= MAX_STALE_ASKS:
                return True
        return False

    def _left(self, budget: int) -> float:
        return budget - self.archive.spent

    def _archived(self, key: str, fidelity: float) -> bool:
        return key in self.archive if fidelity >= 1 else self.archive.has_low_fidelity(key, fidelity)

    def _validate_new(self, genomes: np.ndarray, keys: list[str], budget: int, fidelity: float = 1.0) -> None:
        todo, queued = [], set()
        for g, k in zip(genomes, keys):
            if not self._archived(k, fidelity) and k not in queued:
                todo.append((g, k))
                queued.add(k)
        # Evaluate in order, in chunks no larger than the budget left pays for, so that failures
        # are replaced by the next new networks of the batch and the budget is never overspent.
        while todo:
            n = math.floor(self._left(budget) / fidelity + BUDGET_EPS)
            if n <= 0:
                break
            chunk, todo = todo[:n], todo[n:]
            self._evaluate(chunk, fidelity)

    def _evaluate(self, chunk: list[tuple[np.ndarray, str]], fidelity: float = 1.0) -> None:
        configs = [self.space.to_config(g) for g, _ in chunk]
        if fidelity >= 1 and getattr(self.evaluator, "vectorized", False):
            self._evaluate_vectorized(chunk, configs)
            return
        identity = fidelity_identity(self.evaluator.identity, fidelity)
        pending = []
        for (g, key), config in zip(chunk, configs):
            hit = self.cache.get(identity, key) if self.cache else None
            if hit is not None:
                self._record(key, config, hit[0], None, hit[1], cached=True, fidelity=fidelity)
            else:
                pending.append((key, config))
        if not pending:
            return
        outcomes = (self.evaluator.evaluate([c for _, c in pending], self.timeout) if fidelity >= 1 else
                    self.evaluator.evaluate([c for _, c in pending], self.timeout, fidelity=fidelity))
        for i, outcome in outcomes:
            key, config = pending[i]
            # Archive first: a kill before the cache write costs a cache entry, never the
            # truth of the run's record (a measurement marked as a cache hit).
            self._record(key, config, outcome.metrics, outcome.error, outcome.wall_time, cached=False,
                         fidelity=fidelity)
            if outcome.ok and self.cache is not None:
                self.cache.put(identity, key, outcome.metrics, outcome.wall_time)

    def _evaluate_vectorized(self, chunk: list[tuple[np.ndarray, str]], configs: list[dict]) -> None:
        """A chunk of full evaluations by a vectorized evaluator: measured in one call and
        archived in one transaction, in the order (cache hits first, then the chunk's order),
        with the hypervolumes and validation counts that :meth:`_record` would give each."""
        identity = self.evaluator.identity
        hits = [self.cache.get(identity, key) if self.cache else None for _, key in chunk]
        pending = [i for i, hit in enumerate(hits) if hit is None]
        outcomes = dict(zip(pending, self.evaluator.guarded_batch([configs[i] for i in pending]))) if pending else {}
        entries = []
        for i in [i for i, hit in enumerate(hits) if hit is not None] + pending:
            if hits[i] is not None:
                metrics, error, wall_time, cached = hits[i][0], None, hits[i][1], True
            else:
                outcome = outcomes[i]
                metrics, error, wall_time, cached = outcome.metrics, outcome.error, outcome.wall_time, False
            hv = self._track(metrics) if error is None else None
            entries.append((chunk[i][1], configs[i], metrics, error, wall_time, cached, self.strategy.step, hv))
        self.archive.add_many(entries, self._wall_time_meta())
        for entry in entries:
            if entry[3] is None:
                self.on_validated()
        # Archive first, as in _evaluate: a kill before the cache write costs cache entries only.
        if self.cache is not None:
            new = [(chunk[i][1], outcomes[i].metrics, outcomes[i].wall_time) for i in pending if outcomes[i].ok]
            if new:
                self.cache.put_many(identity, new)

    def _record(self, key: str, config: dict, metrics: dict, error: str | None, wall_time: float,
                cached: bool, fidelity: float = 1.0) -> None:
        meta = self._wall_time_meta()
        if fidelity < 1:
            self.archive.add_low_fidelity(key, fidelity, config, metrics, error, wall_time, cached,
                                          self.strategy.step, meta=meta)
            if error is None:
                self.on_validated(fidelity)
            return
        hv = self._track(metrics) if error is None else None
        self.archive.add(key, config, metrics, error, wall_time, cached, self.strategy.step, hv, meta)
        if error is None:
            self.on_validated()

    def _track(self, metrics: dict) -> float:
        """The hypervolume after a successful validation joins the tracker."""
        return self.tracker.add([metrics[o.name] for o in self.spec.objectives],
                                feasible(self.spec.constraints, metrics))

    def _wall_time_meta(self) -> dict[str, float]:
        """Total wall time of the run over all its sessions, stored in each record's own
        transaction so a kill loses none."""
        return {"wall_time_s": self.wall_time_before + time.perf_counter() - self._started}

    def _rows(self, keys: list[str], fidelity: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Objective rows (minimization) and constraint violations of archived networks (at
        ``fidelity``); NaN where failed."""
        F = np.full((len(keys), len(self.spec.objectives)), np.nan)
        G = np.full((len(keys), len(self.spec.constraints)), np.nan)
        for i, k in enumerate(keys):
            r = self.archive.get(k) if fidelity >= 1 else self.archive.get_low_fidelity(k, fidelity)
            if r is not None and r.ok:
                F[i] = to_minimization(self.spec.objectives, [r.metrics])[0]
                G[i] = violations(self.spec.constraints, [r.metrics])[0]
        return F, G

    def _store_diagnostics(self) -> None:
        for entry in self.strategy.diagnostics:
            entry = dict(entry)
            name = self.spec.objectives[entry.pop("objective")].name
            self.archive.add_diagnostic(entry.pop("step"), name, entry)
        self.strategy.diagnostics.clear()
