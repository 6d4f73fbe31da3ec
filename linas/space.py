"""Discrete search spaces with conditional variables.

A network is described three ways, all interchangeable:

- a *genome*: one integer per variable, the index of its choice (what NSGA-II evolves);
- a *config*: ``{variable name: chosen value}`` (what a supernet is given);
- a *key*: a stable string, the chosen values in declaration order joined by commas
  (what the archive stores as unique).

Conditional variables (the kernel size of a block that its stage's depth does not use,
the heads of a decoder layer beyond the decoder's depth) are *canonicalized*: when
inactive they take their first choice, so one network has exactly one genome and key.

Predictor encodings have a fixed feature order that depends on the space alone:

- ``"onehot"``: for each variable in declaration order, one column per choice in
  declaration order; an inactive variable encodes to all zeros.
- ``"ordinal"``: one column per variable, ``(index + 1) / n_choices`` when active and
  ``0`` when inactive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linas.errors import ConfigError

ENCODINGS = ("onehot", "ordinal")


@dataclass(frozen=True)
class Condition:
    """The variable is active only while ``config[variable] >= at_least``."""

    variable: str
    at_least: float


@dataclass(frozen=True)
class Variable:
    """A named discrete design variable."""

    name: str
    choices: tuple[Any, ...]
    active_if: Condition | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError(f"variable '{self.name}' has no choices")
        texts = [str(c) for c in self.choices]
        if len(set(texts)) != len(texts):
            raise ValueError(f"variable '{self.name}' has repeated choices {texts}")
        if any("," in t for t in texts):
            raise ValueError(f"variable '{self.name}': choices may not contain ','")


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of discrete variables.

    Example::

        space = SearchSpace("toy", [Variable("depth", (1, 2)),
                                    Variable("k1", (3, 5), Condition("depth", 2))])
        g = space.sample(np.random.default_rng(0), 4)      # canonical genomes
        space.key(g[0])                                     # e.g. '1,3'
        space.encode(g, "onehot").shape                     # (4, 4)
    """

    name: str
    variables: tuple[Variable, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _conditional: np.ndarray = field(init=False, repr=False, compare=False)
    _parent: np.ndarray = field(init=False, repr=False, compare=False)
    _active_table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        index = {v.name: i for i, v in enumerate(self.variables)}
        if len(index) != len(self.variables):
            raise ValueError(f"space '{self.name}' has repeated variable names")
        for v in self.variables:
            if v.active_if is None:
                continue
            parent = index.get(v.active_if.variable)
            if parent is None:
                raise ValueError(f"'{v.name}' depends on unknown variable '{v.active_if.variable}'")
            if self.variables[parent].active_if is not None:
                raise ValueError(f"'{v.name}' depends on '{v.active_if.variable}', which is conditional itself")
        object.__setattr__(self, "_index", index)
        # Lookup tables that make active_mask a single fancy-indexing operation:
        # conditional variable c is active iff _active_table[c, genome[_parent[c]]].
        conditional = [i for i, v in enumerate(self.variables) if v.active_if is not None]
        parents = [index[self.variables[i].active_if.variable] for i in conditional]
        width = max([len(self.variables[p].choices) for p in parents], default=1)
        table = np.zeros((len(conditional), width), dtype=bool)
        for row, (i, p) in enumerate(zip(conditional, parents)):
            values = self._numeric_choices(p)
            table[row, : len(values)] = values >= self.variables[i].active_if.at_least
        object.__setattr__(self, "_conditional", np.array(conditional, dtype=np.int64))
        object.__setattr__(self, "_parent", np.array(parents, dtype=np.int64))
        object.__setattr__(self, "_active_table", table)

    # ----------------------------------------------------------------- basic facts
    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def n_choices(self) -> np.ndarray:
        """Number of choices of each variable; a genome's entry ``i`` is in ``[0, n_choices[i])``."""
        return np.array([len(v.choices) for v in self.variables], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.variables)

    def variable(self, name: str) -> Variable:
        return self.variables[self._index[name]]

    def fingerprint(self) -> str:
        """A hash of the variables, their choices and conditions (changes when the space does)."""
        desc = [[v.name, [str(c) for c in v.choices],
                 None if v.active_if is None else [v.active_if.variable, v.active_if.at_least]]
                for v in self.variables]
        return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]

    def size(self) -> int:
        """Number of distinct networks (canonical genomes)."""
        unconditional = [i for i, v in enumerate(self.variables) if v.active_if is None]
        total = 0
        # Enumerate the parents' values; children multiply only where active.
        parents = sorted({self._index[v.active_if.variable] for v in self.variables if v.active_if})
        others = [i for i in unconditional if i not in parents]
        base = 1
        for i in others:
            base *= len(self.variables[i].choices)
        for combo in np.ndindex(*[len(self.variables[p].choices) for p in parents]):
            values = {self.variables[p].name: self.variables[p].choices[c] for p, c in zip(parents, combo)}
            n = base
            for v in self.variables:
                if v.active_if is not None and values[v.active_if.variable] >= v.active_if.at_least:
                    n *= len(v.choices)
            total += n
        return total

    # ----------------------------------------------------------------- canonical form
    def active_mask(self, genomes: np.ndarray) -> np.ndarray:
        """Boolean array, same shape as ``genomes``: which variables the network uses."""
        g = np.atleast_2d(np.asarray(genomes, dtype=np.int64))
        mask = np.ones(g.shape, dtype=bool)
        if len(self._conditional):
            rows = np.arange(len(self._conditional))
            mask[:, self._conditional] = self._active_table[rows, g[:, self._parent]]
        return mask

    def canonicalize(self, genomes: np.ndarray) -> np.ndarray:
        """Set every inactive variable to its first choice (vectorized over rows)."""
        g = np.array(np.atleast_2d(genomes), dtype=np.int64)
        g[~self.active_mask(g)] = 0
        return g

    def _numeric_choices(self, i: int) -> np.ndarray:
        return np.asarray(self.variables[i].choices, dtype=float)

    # ----------------------------------------------------------------- conversions
    def validate_genome(self, genome: Sequence[int]) -> np.ndarray:
        g = np.asarray(genome)
        if g.ndim != 1 or len(g) != len(self):
            raise ConfigError(f"space '{self.name}': a genome needs {len(self)} entries, got {g.shape}")
        if not np.issubdtype(g.dtype, np.integer):
            raise ConfigError(f"space '{self.name}': a genome holds integers, got {g.dtype}")
        bad = np.flatnonzero((g < 0) | (g >= self.n_choices))
        if len(bad):
            i = int(bad[0])
            raise ConfigError(
                f"space '{self.name}': '{self.names[i]}' index {int(g[i])} is outside 0..{self.n_choices[i] - 1}")
        return self.canonicalize(g)[0]

    def to_config(self, genome: Sequence[int]) -> dict[str, Any]:
        g = self.validate_genome(genome)
        return {v.name: v.choices[int(i)] for v, i in zip(self.variables, g)}

    def from_config(self, config: Mapping[str, Any]) -> np.ndarray:
        """Genome of a config. Variables the network does not use may be left out."""
        unknown = set(config) - set(self._index)
        if unknown:
            raise ConfigError(f"space '{self.name}': unknown variable(s) {sorted(unknown)}")
        genome = np.zeros(len(self), dtype=np.int64)
        missing = []
        for i, v in enumerate(self.variables):
            if v.name not in config:
                missing.append(i)
                continue
            value = config[v.name]
            try:
                genome[i] = _index_of(v.choices, value)
            except ValueError:
                raise ConfigError(
                    f"space '{self.name}': {v.name}={value!r} is not one of {list(v.choices)}") from None
        if missing:
            active = self.active_mask(genome)[0]
            needed = [self.names[i] for i in missing if active[i]]
            if needed:
                raise ConfigError(f"space '{self.name}': missing variable(s) {needed}")
        return self.canonicalize(genome)[0]

    def key(self, genome: Sequence[int]) -> str:
        g = self.validate_genome(genome)
        return ",".join(str(v.choices[int(i)]) for v, i in zip(self.variables, g))

    def keys(self, genomes: np.ndarray) -> list[str]:
        """Keys of many canonical genomes (no validation: for genomes this space produced)."""
        g = self.canonicalize(genomes)
        texts = [[str(c) for c in v.choices] for v in self.variables]
        return [",".join(texts[j][int(x)] for j, x in enumerate(row)) for row in g]

    def from_key(self, key: str) -> np.ndarray:
        parts = key.split(",")
        if len(parts) != len(self):
            raise ConfigError(f"space '{self.name}': a key needs {len(self)} values, got {len(parts)}")
        genome = np.zeros(len(self), dtype=np.int64)
        for i, (v, text) in enumerate(zip(self.variables, parts)):
            texts = [str(c) for c in v.choices]
            if text not in texts:
                raise ConfigError(f"space '{self.name}': {v.name}={text} is not one of {texts}")
            genome[i] = texts.index(text)
        return self.canonicalize(genome)[0]

    # ----------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` canonical genomes, each variable drawn uniformly from its choices."""
        g = rng.integers(0, self.n_choices, size=(n, len(self)))
        return self.canonicalize(g)

    def sample_unique(self, rng: np.random.Generator, n: int, exclude: Iterable[str] = (),
                      patience: int = 20) -> np.ndarray:
        """Up to ``n`` distinct canonical genomes whose keys are not in ``exclude``.

        Fewer are returned only when ``patience`` draws in a row find no unseen network,
        i.e. when the space (nearly) runs out of them.
        """
        seen = set(exclude)
        out: list[np.ndarray] = []
        idle = 0
        while len(out) < n and idle < patience:
            batch = self.sample(rng, min(2 * (n - len(out)), 4096))
            found = 0
            for row, k in zip(batch, self.keys(batch)):
                if k not in seen:
                    seen.add(k)
                    out.append(row)
                    found += 1
                    if len(out) == n:
                        break
            idle = 0 if found else idle + 1
        return np.array(out, dtype=np.int64).reshape(-1, len(self))

    # ----------------------------------------------------------------- variation
    def mutate(self, genomes: np.ndarray, rng: np.random.Generator, rate: float | None = None) -> np.ndarray:
        """Mutated copies of canonical genomes: each variable the network uses is redrawn to
        another of its choices with probability ``rate`` (default ``1 / len(space)``); a row
        that would come out unchanged gets one such redraw, so every child differs from its parent.
        """
        g = np.array(np.atleast_2d(genomes), dtype=np.int64)
        n_choices = self.n_choices
        rate = 1.0 / len(self) if rate is None else float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"mutation rate must be in [0, 1], got {rate}")
        mutable = self.active_mask(g) & (n_choices > 1)
        flip = mutable & (rng.random(g.shape) < rate)
        for i in np.flatnonzero(~flip.any(axis=1) & mutable.any(axis=1)):
            flip[i, rng.choice(np.flatnonzero(mutable[i]))] = True
        # A shift of 1..n-1 modulo n is a uniform draw among the other choices.
        shift = rng.integers(1, np.maximum(n_choices, 2), size=g.shape)
        g[flip] = (g[flip] + shift[flip]) % n_choices[np.nonzero(flip)[1]]
        return self.canonicalize(g)

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover of paired rows of ``a`` and ``b``: each variable from either parent
        with probability 1/2; children are canonical."""
        a = np.atleast_2d(np.asarray(a, dtype=np.int64))
        b = np.atleast_2d(np.asarray(b, dtype=np.int64))
        if a.shape != b.shape:
            raise ValueError(f"crossover needs parents of one shape, got {a.shape} and {b.shape}")
        return self.canonicalize(np.where(rng.random(a.shape) < 0.5, a, b))

    # ----------------------------------------------------------------- encodings
    def feature_names(self, encoding: str = "onehot") -> list[str]:
        _check_encoding(encoding)
        if encoding == "ordinal":
            return list(self.names)
        return [f"{v.name}={c}" for v in self.variables for c in v.choices]

    def encode(self, genomes: np.ndarray, encoding: str = "onehot") -> np.ndarray:
        """Feature matrix of canonical genomes, shape ``(n, len(feature_names(encoding)))``."""
        _check_encoding(encoding)
        g = self.canonicalize(genomes)
        active = self.active_mask(g)
        n_choices = self.n_choices
        if encoding == "ordinal":
            return np.where(active, (g + 1) / n_choices, 0.0)
        offsets = np.concatenate([[0], np.cumsum(n_choices)[:-1]])
        out = np.zeros((g.shape[0], int(n_choices.sum())))
        rows, cols = np.nonzero(active)
        out[rows, offsets[cols] + g[rows, cols]] = 1.0
        return out


def _index_of(choices: tuple[Any, ...], value: Any) -> int:
    for i, c in enumerate(choices):
        if c == value and type(c) is not bool or c is value:
            return i
    raise ValueError(value)


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown encoding '{encoding}'; known: {', '.join(ENCODINGS)}")
