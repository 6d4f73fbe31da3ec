"""A plain grid space: ``n_var`` variables of ``levels`` equally spaced indices each."""

from __future__ import annotations

from pydantic import Field

from linas.registry import Options
from linas.space import SearchSpace, Variable
from linas.spaces import spaces


class GridOptions(Options):
    n_var: int = Field(10, ge=1)
    levels: int = Field(11, ge=2)


@spaces.register("grid", options=GridOptions)
def grid(n_var: int = 10, levels: int = 11) -> SearchSpace:
    """Variables ``x0..x{n_var-1}`` taking integer levels ``0..levels-1``."""
    return SearchSpace(f"grid{n_var}x{levels}", [Variable(f"x{i}", tuple(range(levels))) for i in range(n_var)])
