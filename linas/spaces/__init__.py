"""Registered search spaces, declared without torch.

``get_space("ofa_mbv3")`` or ``get_space("ofa_mbv3", resolutions=[160, 192, 224])``.
A new space is one module in this package that registers a factory with
``@spaces.register("name", options=Model)`` (``Model``: a :class:`linas.registry.Options`).
"""

from __future__ import annotations

from typing import Any

from linas.registry import Registry
from linas.space import SearchSpace

spaces: Registry = Registry("space", packages=["linas.spaces"])


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build a registered space (``spaces.build``), reporting bad options as one line."""
    return spaces.build(name, **options)
