"""``ofa_imagenet``: OFA's MobileNetV3 space with OFA's five ImageNet resolutions (46 variables).

The variables of :mod:`linas.spaces.ofa_mbv3` (kernel and expand ratio of 20 blocks,
depth of 5 stages) plus ``resolution`` in {160, 176, 192, 208, 224}, the resolutions OFA's
tutorial searches with its ImageNet accuracy predictor and Note10 latency tables. The
widths (w1.2) belong to the evaluator (``ofa_imagenet``), not to the space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from linas.space import SearchSpace
from linas.spaces import spaces
from linas.spaces.ofa_mbv3 import ofa_mbv3_space

OFA_RESOLUTIONS = (160, 176, 192, 208, 224)


@spaces.register("ofa_imagenet")
def ofa_imagenet_space(resolutions: Sequence[int] = OFA_RESOLUTIONS) -> SearchSpace:
    """46 variables: ``ks_0..ks_19``, ``e_0..e_19``, ``d_0..d_4``, ``resolution``."""
    return dataclasses.replace(ofa_mbv3_space(resolutions=[int(r) for r in resolutions]), name="ofa_imagenet")
