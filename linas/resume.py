"""How a strategy catches up with its archive when a run resumes.

Two ways, both deterministic on the same machine and library versions:

- **restore** (strategies with a ``state_dict``): after every ``tell`` the runner
  saves a snapshot (the step, the order in which archived networks were told, the
  strategy's JSON state). Resume hands the strategy everything it was told and its
  state back, so nothing it computed (predictor fits, inner searches) is recomputed.
  The batch that was interrupted is asked again and comes out the same, so its
  archived networks are found, not validated again.
- **replay** (the others, e.g. NSGA-II's pymoo population): the strategy is asked
  from its seed again and told the archived results; nothing is validated twice.

Elsewhere, floating point can make a strategy propose other networks than its archive
holds. A strategy that can (``Strategy.absorb``) is then told the archived batches it
skipped, in their original steps, and the divergence is recorded in the run's metadata.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from linas.archive import Record, RunArchive
from linas.strategies.base import Strategy

#: Metadata entry of the snapshot.
SNAPSHOT = "strategy_state"

Rows = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


class Resume:
    """Keeps a strategy consistent with its run's archive across sessions."""

    def __init__(self, archive: RunArchive, strategy: Strategy, rows: Rows) -> None:
        self.archive, self.strategy, self.rows = archive, strategy, rows
        self.mode = "new" if len(archive) == 0 else "replay"
        self._catching_up = len(archive) > 0  # until the strategy has been told every archived network
        self._order = {r.key: i for i, r in enumerate(archive.records())}
        # Archive positions of the networks told, in the order told, as [start, length] runs
        # (told order is mostly archive order, so a few runs hold a whole run's order).
        self._told: list[list[int]] = []
        self._n_told = 0

    def restore(self) -> bool:
        """Restore the strategy from the archive's last snapshot, where it has one."""
        snapshot = self.archive.meta().get(SNAPSHOT)
        if not snapshot or self.strategy.state_dict() is None:
            return False
        records = self.archive.records()
        keys = [records[i].key for start, length in snapshot["told"] for i in range(start, start + length)]
        genomes = np.array([self.strategy.space.from_key(k) for k in keys], dtype=np.int64).reshape(
            len(keys), len(self.strategy.space))
        F, G = self.rows(keys)
        self.strategy.restore(genomes, F, G, int(snapshot["step"]), snapshot["state"])
        self._told, self._n_told = [list(r) for r in snapshot["told"]], len(keys)
        self.mode = "restored"
        return True

    def save(self) -> None:
        """Snapshot the strategy after a ``tell`` (a no-op for strategies that are replayed)."""
        state = self.strategy.state_dict()
        if state is None:
            return
        for key in self.strategy.told_keys[self._n_told:]:
            i = self._index(key)
            if self._told and sum(self._told[-1]) == i:
                self._told[-1][1] += 1
            else:
                self._told.append([i, 1])
        self._n_told = len(self.strategy.told_keys)
        self.archive.set_meta(SNAPSHOT, {"step": self.strategy.step, "told": self._told, "state": state})

    def _index(self, key: str) -> int:
        if key not in self._order:  # archived since: extend the map with the new records only
            records = self.archive.records()
            self._order.update((records[i].key, i) for i in range(len(self._order), len(records)))
        return self._order[key]

    def diverged(self, keys: list[str]) -> bool:
        """Whether the archive holds networks the strategy was never told and no longer asks
        for (it took another path than the session that wrote them). A strategy that can is
        told them, batch by batch in their original steps, and True is returned: ask again."""
        if not self._catching_up or all(k in self.archive for k in keys):
            return False  # not resuming, or a batch the archive holds
        untold = [r for r in self.archive.records() if r.key not in self.strategy.known]
        if not untold:
            self._catching_up = False
            return False
        asked = set(keys)
        if all(r.key in asked for r in untold):
            return False  # the rest of an interrupted batch
        self._catching_up = False
        steps: dict[int, list[Record]] = {}
        for r in untold:
            steps.setdefault(r.step, []).append(r)
        batches = []
        for rs in steps.values():
            rk = [r.key for r in rs]
            batches.append((np.array([self.strategy.space.from_key(k) for k in rk], dtype=np.int64),
                            *self.rows(rk)))
        at_step = self.strategy.step
        absorbed = self.strategy.absorb(batches)
        self.archive.set_meta("replay_diverged", {"at_step": at_step, "untold_networks": len(untold),
                                                 "absorbed": absorbed, "mode": self.mode})
        if not absorbed:
            print(f"linas: {self.archive.run_dir}: the resumed strategy proposes other networks than its archive "
                  f"holds (another machine or library versions?); {len(untold)} archived networks go on untold "
                  f"to it", file=sys.stderr)
        return absorbed
