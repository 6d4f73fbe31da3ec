"""Small published tables that ship inside the package (see ``README.md`` here).

- ``ofa/``: Once-for-All's ImageNet top-1 predictor of the w1.2 MobileNetV3 supernet
  (``acc_predictor.npz``, converted from OFA's ``acc_predictor.pth``) and its per-layer
  latency lookup tables measured on a Samsung Note10 (``latency_table_note10/``).
- ``hat_latency/``: Hardware-Aware Transformers' measured latency of 2,000 SubTransformers
  per device and task, with HAT's sampling-space configs.

Both are MIT licensed; each folder holds its LICENSE.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of a packaged data file, e.g. ``data_path("ofa", "acc_predictor.npz")``."""
    return Path(str(resources.files("linas.data").joinpath(*parts)))
