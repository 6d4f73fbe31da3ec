"""Helpers the evolutionary and sampling strategies share: batches of new networks, and
the state of a strategy whose only state beyond what it was told is one random generator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from linas.space import SearchSpace
from linas.strategies.base import rng_state, set_rng_state

#: Rounds of proposals that may bring only known networks before random ones fill a batch.
PATIENCE = 20


def fresh_batch(space: SearchSpace, rng: np.random.Generator, n: int, taken: set[str],
                propose: Callable[[int], np.ndarray], fill: bool = True) -> np.ndarray:
    """``n`` distinct canonical genomes whose keys are not in ``taken``, from repeated
    ``propose(k)`` calls (``k``: how many are still needed); after ``PATIENCE`` rounds,
    random networks fill the rest (``fill``). ``taken`` gains the keys returned."""
    out: list[np.ndarray] = []
    for _ in range(PATIENCE):
        if len(out) >= n:
            break
        batch = propose(n - len(out))
        for g, key in zip(batch, space.keys(batch)):
            if key not in taken and len(out) < n:
                taken.add(key)
                out.append(g)
    genomes = np.array(out, dtype=np.int64).reshape(-1, len(space))
    if fill and len(genomes) < n:
        extra = space.sample_unique(rng, n - len(genomes), exclude=taken)
        taken.update(space.keys(extra))
        genomes = np.vstack([genomes, extra])
    return genomes


class RngState:
    """Mixin for a strategy whose state is what it was told plus ``self._rng``: resume
    restores the generator, and a diverged replay is caught up by telling it the archive."""

    _rng: np.random.Generator

    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
        return self._tell_batches(batches)

    def state_dict(self) -> dict:
        return {"rng": rng_state(self._rng)}

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self._rng, state["rng"])
