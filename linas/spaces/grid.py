"""A plain grid space: ``n_var`` variables of ``levels`` equally spaced indices each."""

from __future__ import annotations

from linas.space import SearchSpace, Variable
from linas.spaces import spaces


@spaces.register("grid")
def grid(n_var: int = 10, levels: int = 11) -> SearchSpace:
    """Variables ``x0..x{n_var-1}`` taking integer levels ``0..levels-1``."""
    if n_var < 1 or levels < 2:
        raise ValueError("grid needs n_var >= 1 and levels >= 2")
    return SearchSpace(f"grid{n_var}x{levels}", [Variable(f"x{i}", tuple(range(levels))) for i in range(n_var)])
