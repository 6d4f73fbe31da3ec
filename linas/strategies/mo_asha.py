"""Multi-objective successive halving over fidelities (synchronous ASHA, MO-ASHA).

Successive halving (Jamieson and Talwalkar, AISTATS'16; as the synchronous form of ASHA,
Li et al., MLSys'20) with multi-objective promotion (MO-ASHA, Schmucker et al., 2021):
each bracket draws ``population`` new random networks and evaluates them at the lowest
fidelity; the best ``1 / eta`` of each rung, by non-dominated rank under constraint
domination and then crowding distance (:func:`linas.mo.best_first`), are promoted to the
next rung, at ``eta`` times the fidelity, up to full validations at fidelity 1. With the
defaults (``population`` 27, ``eta`` 3, ``min_fidelity`` 1/9) a bracket evaluates 27
networks at 1/9, 9 at 1/3 and validates 3, at a cost of 3 + 3 + 3 = 9 validations.

Only successful evaluations are promoted; a bracket whose rung has none starts over.
The first bracket's networks are the shared initial population; later brackets draw
networks never evaluated at any fidelity. Its state (the random generator, the rung it
is at, the results of the current bracket's rungs and every network it has drawn) is
saved after each tell, so a resumed run restores it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from linas.mo import best_first
from linas.spec import Problem
from linas.strategies.base import (Strategy, StrategyOptions, initial_population, rng_state, set_rng_state,
                                   strategies)


def rung_fidelities(eta: int, min_fidelity: float) -> list[float]:
    """Fidelities of the rungs, lowest first, ending at 1: ``min_fidelity * eta**k`` below 1
    (exactly ``eta**-j`` when ``min_fidelity`` is a power of ``1 / eta``)."""
    below = max(0, math.ceil(math.log(1 / min_fidelity) / math.log(eta) - 1e-9))
    if math.isclose(min_fidelity * eta ** below, 1.0, rel_tol=1e-9):
        return [1 / eta ** j for j in range(below, 0, -1)] + [1.0]
    return [float(f"{min_fidelity * eta ** k:.12g}") for k in range(below)] + [1.0]


@strategies.register("mo_asha")
class MOASHA(Strategy):
    """Synchronous successive halving over fidelities with non-dominated promotion.

    Options: ``population`` (networks of a bracket's lowest rung; default 27), ``eta``
    (promotion ratio and fidelity step; default 3), ``min_fidelity`` (of the lowest rung;
    default 1/9). Rung ``k`` holds ``max(1, population // eta**k)`` networks.
    """

    class Options(StrategyOptions):
        population: int = Field(27, ge=2, description="networks of each bracket's lowest rung")
        eta: int = Field(3, ge=2, description="promotion ratio and fidelity step between rungs")
        min_fidelity: float = Field(1 / 9, gt=0, le=1, description="fidelity of the lowest rung")

    def __init__(self, problem: Problem, seed: int, population: int = 27, eta: int = 3,
                 min_fidelity: float = 1 / 9) -> None:
        super().__init__(problem, seed, population)
        self.eta = eta
        self.fidelities = rung_fidelities(eta, min_fidelity)
        self.min_fidelity = self.fidelities[0]
        self.sizes = [max(1, population // eta ** k) for k in range(len(self.fidelities))]
        self._rng = np.random.default_rng([seed, 7])
        self._brackets = 0  # brackets started
        self._rung = 0
        self._results: list[tuple[list[str], np.ndarray, np.ndarray]] = []  # this bracket's rungs so far
        self._drawn: set[str] = set()  # every network drawn for a lowest rung
        self._drawn_order: list[str] = []
        self._pending: np.ndarray | None = None

    @property
    def fidelity(self) -> float:  # type: ignore[override]
        return self.fidelities[self._rung]

    def ask(self) -> np.ndarray:
        if self._pending is not None:  # asked again before a tell: the same batch
            return self._pending
        while True:
            if self._rung == 0:
                batch = self._new_networks()
            else:
                keys, F, G = self._results[-1]
                ok = np.flatnonzero(~np.isnan(F).any(axis=1))
                picked = ok[best_first(F[ok], min(self.sizes[self._rung], len(ok)), G[ok])] if len(ok) else ok
                batch = np.array([self.space.from_key(keys[i]) for i in picked], dtype=np.int64).reshape(
                    -1, len(self.space))
            if len(batch) or self._rung == 0:
                self._pending = batch
                return batch
            self._rung, self._results = 0, []  # nothing to promote: a new bracket

    def _new_networks(self) -> np.ndarray:
        if self._brackets == 0:
            batch = initial_population(self.space, self.seed, self.population)
        else:
            batch = self.space.sample_unique(self._rng, self.population, exclude=self._drawn | self.known)
        self._brackets += 1
        for key in self.space.keys(batch):
            if key not in self._drawn:
                self._drawn.add(key)
                self._drawn_order.append(key)
        return batch

    def tell(self, genomes: np.ndarray, F: np.ndarray, G: np.ndarray | None = None) -> None:
        self._pending = None
        if self.fidelity >= 1:
            super().tell(genomes, F, G)  # validations: remembered as every strategy's
            self._rung, self._results = 0, []
            return
        genomes = np.asarray(genomes, dtype=np.int64).reshape(-1, len(self.space))
        F = np.asarray(F, dtype=float).reshape(len(genomes), self.n_objectives)
        self._results.append((self.space.keys(genomes), F, self._constraint_rows(G, len(genomes))))
        self._rung += 1
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng), "brackets": self._brackets, "rung": self._rung,
                "results": [{"keys": k, "F": _json_rows(F), "G": _json_rows(G)} for k, F, G in self._results],
                "drawn": self._drawn_order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self._rng, state["rng"])
        self._brackets, self._rung = int(state["brackets"]), int(state["rung"])
        self._results = [(list(r["keys"]), _rows(r["F"], len(r["keys"]), self.n_objectives),
                          _rows(r["G"], len(r["keys"]), self.problem.n_constraints)) for r in state["results"]]
        self._drawn_order = list(state["drawn"])
        self._drawn = set(self._drawn_order)
        self._pending = None


def _json_rows(M: np.ndarray) -> list[list[float | None]]:
    """Rows as JSON lists, NaN (failed) as null."""
    return [[None if math.isnan(x) else float(x) for x in row] for row in np.asarray(M, dtype=float)]


def _rows(rows: list[list[float | None]], n: int, m: int) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in row] for row in rows], dtype=float).reshape(n, m)
