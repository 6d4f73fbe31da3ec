"""What a run is: the frozen run spec stored in its archive, and the problem a strategy sees.

A :class:`RunSpec` fixes everything that defines a run (space, evaluator, objectives
with direction and bounds, reference point, constraints, strategy and options, seed,
budget); it is written into the run's archive when the run starts and read back by
``linas report`` and ``linas compare``, so a run directory explains itself.

A :class:`Problem` is the part a strategy needs to search: the space, the objectives
(direction and bounds), the reference point of the hypervolume and the constraints.

Example::

    problem = Problem(space, (Objective("top1", "max", "%", (60, 80)),
                              Objective("latency", "min", "ms", (10, 160))),
                      reference_point=(1.0, 1.0),
                      constraints=(Constraint("latency", max=25.0),))
    problem.normalize(F)      # minimization rows -> [0, 1] per objective, 0 at the best bound
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linas.errors import ConfigError
from linas.hypervolume import Normalizer
from linas.objectives import Constraint, Objective
from linas.space import SearchSpace


def check_reference_point(reference_point: Sequence[float], n_objectives: int) -> tuple[float, ...]:
    """The reference point in normalized space: one finite value > 0 per objective.

    Normalized objectives are 0 at their best bound, so a reference point with a value
    at or below 0 is dominated by nothing reachable and every hypervolume would be 0.
    """
    ref = tuple(float(r) for r in reference_point)
    if len(ref) != n_objectives:
        raise ConfigError(f"reference_point needs {n_objectives} values, one per objective, got {len(ref)}")
    for i, r in enumerate(ref):
        if not math.isfinite(r) or r <= 0:
            raise ConfigError(f"reference_point[{i}] = {r:g} is outside the normalized box: each value must be "
                              "finite and above 0 (0 is an objective's best bound, 1 its worst)")
    return ref


@dataclass(frozen=True)
class Problem:
    """The search problem as strategies see it."""

    space: SearchSpace
    objectives: tuple[Objective, ...]
    reference_point: tuple[float, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    #: Cheap metrics of any network (a :class:`~linas.features.FeatureSource`), when the experiment names one.
    features: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if len(self.objectives) < 1:
            raise ConfigError("a problem needs at least one objective")
        ref = self.reference_point or (1.0,) * len(self.objectives)
        object.__setattr__(self, "reference_point", check_reference_point(ref, len(self.objectives)))
        bounds = [o.bounds if o.bounds is not None else (0.0, 1.0) for o in self.objectives]
        object.__setattr__(self, "_normalizer", Normalizer(self.objectives, bounds))

    @classmethod
    def simple(cls, space: SearchSpace, n_objectives: int) -> Problem:
        """Minimization objectives ``f1..fm`` with unit bounds: for tests and toy problems."""
        return cls(space, tuple(Objective(f"f{j + 1}", "min", bounds=(0.0, 1.0)) for j in range(n_objectives)))

    @property
    def n_objectives(self) -> int:
        return len(self.objectives)

    @property
    def n_constraints(self) -> int:
        return len(self.constraints)

    def normalize(self, F: np.ndarray) -> np.ndarray:
        """Minimization rows (as strategies are told them) -> normalized, 0 best and 1 worst bound
        (the hypervolume's normalization, :class:`~linas.hypervolume.Normalizer`)."""
        signs = np.array([o.sign for o in self.objectives])
        return self._normalizer(np.asarray(F, dtype=float) * signs)  # back to the objectives' own units


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run (one strategy, one seed); stored in its archive."""

    experiment: str
    space: Mapping[str, Any]         # name, options, fingerprint
    evaluator: Mapping[str, Any]     # name, options, identity
    objectives: tuple[Objective, ...]
    reference_point: tuple[float, ...]
    strategy: Mapping[str, Any]      # name, label, options
    seed: int
    budget: int
    constraints: tuple[Constraint, ...] = ()
    targets: tuple[float, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything else a run records

    @property
    def label(self) -> str:
        return self.strategy.get("label") or self.strategy["name"]

    def problem(self, space: SearchSpace, features: Any = None) -> Problem:
        return Problem(space, self.objectives, self.reference_point, self.constraints, features)

    def resume_key(self) -> dict[str, Any]:
        """What must be equal for a run to resume (budget, targets and timeouts may change).

        Its shape is that of the settings older archives stored, so they still resume.
        """
        key = {"space": {"name": self.space["name"], "options": dict(self.space.get("options", {}))},
               "evaluator": {"name": self.evaluator["name"], "options": dict(self.evaluator.get("options", {}))},
               "objectives": [{"name": o.name, "bounds": list(o.bounds)} for o in self.objectives],
               "reference_point": list(self.reference_point),
               "strategy": {"name": self.strategy["name"], "options": dict(self.strategy.get("options", {})),
                            "label": self.strategy.get("label")},
               "seed": self.seed}
        if self.constraints:
            key["constraints"] = [c.to_dict() for c in self.constraints]
        features = self.extra.get("features")
        if features:  # only runs whose strategy uses the feature source depend on it
            key["features"] = {k: features.get(k) for k in ("name", "options", "metrics")}
        return key

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "space": dict(self.space), "evaluator": dict(self.evaluator),
                "objectives": [o.to_dict() for o in self.objectives], "reference_point": list(self.reference_point),
                "strategy": dict(self.strategy), "seed": self.seed, "budget": self.budget,
                "constraints": [c.to_dict() for c in self.constraints], "targets": list(self.targets),
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        return cls(d["experiment"], d["space"], d["evaluator"], tuple(Objective.from_dict(o) for o in d["objectives"]),
                   tuple(d["reference_point"]), d["strategy"], int(d["seed"]), int(d["budget"]),
                   tuple(Constraint.from_dict(c) for c in d.get("constraints", [])), tuple(d.get("targets", [])),
                   d.get("extra", {}))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], where: str = "run") -> RunSpec:
        """The spec of an archive's metadata, also from archives written before specs existed."""
        if "spec" in meta:
            return cls.from_dict(meta["spec"])
        settings = meta.get("settings")
        if settings is None:
            raise ConfigError(f"{where}: the run was stopped before its settings were written; "
                              "run its search again (or remove it)")
        declared = {o["name"]: o for o in meta.get("objectives", [])}
        objectives = tuple(Objective(o["name"], declared.get(o["name"], {}).get("direction", "min"),
                                     declared.get(o["name"], {}).get("unit", ""), tuple(o["bounds"]))
                           for o in settings["objectives"])
        ref = settings.get("reference_point") or [1.0] * len(objectives)
        space = {"name": settings["space"]["name"], "options": settings["space"].get("options", {}),
                 "fingerprint": (meta.get("space") or {}).get("fingerprint")}
        evaluator = {**settings["evaluator"], "identity": meta.get("evaluator")}
        return cls(meta.get("experiment", ""), space, evaluator, objectives, tuple(ref), settings["strategy"],
                   int(settings["seed"]), int(meta.get("budget", 0)),
                   tuple(Constraint.from_dict(c) for c in settings.get("constraints", [])),
                   tuple(meta.get("targets", [])))
