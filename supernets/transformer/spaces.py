"""A tiny HAT space for smoke tests and examples (registered when ``supernets.transformer`` is imported).

``hat_tiny``: the variable kinds of HAT with 3 encoder layers, 1-2 decoder layers and
widths of a few dozen, so a supernet trains in seconds.
"""

from __future__ import annotations

from linas.space import SearchSpace
from linas.spaces import spaces
from linas.spaces.hat_transformer import hat_space


@spaces.register("hat_tiny")
def hat_tiny() -> SearchSpace:
    """HAT's variable kinds at toy sizes (Q/K/V width 32 suits it)."""
    return hat_space("hat_tiny", embed_dims=(32, 24), ffn_dims=(64, 48, 32), heads=(2, 1),
                     encoder_layers=3, decoder_layers=(1, 2))
