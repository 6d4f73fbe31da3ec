"""Training augmentation and normalization of image batches (pure tensor functions).

Every random number is drawn from the caller's :class:`torch.Generator`, for a whole
batch at once and in a fixed order, so that an epoch's batches depend only on the
generator's seed and a resumed epoch can draw (and discard) the numbers of the batches
it skips (:func:`draw_augmentation`).

Two augmentations:

- ``pad_crop`` (CIFAR style): a random crop of the image's own size from its copy padded
  by ``pad_crop`` pixels, then a horizontal flip with probability 1/2;
- ``random_resized_crop`` (Inception/OFA style, on whole batches): a box of a random area
  fraction in ``scale`` and aspect ratio in ``ratio`` (log-uniform), at a random place,
  resized (bilinear) to the training resolution, mirrored with probability 1/2. Suited to
  Tiny-ImageNet's 64x64 images; ``scale`` (0.25, 1) rather than ImageNet's (0.08, 1),
  which is too strong for small networks trained for few epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augmentation:
    """How training batches are augmented (built from the ``data:`` settings)."""

    pad_crop: int = 4
    flip: bool = True
    resized_crop_scale: tuple[float, float] | None = None  # set: random-resized-crop instead of pad-crop
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)


@dataclass
class Draw:
    """The random numbers of one batch's augmentation."""

    dy: torch.Tensor | None = None
    dx: torch.Tensor | None = None
    mirror: torch.Tensor | None = None
    box: torch.Tensor | None = None  # (n, 4): width, height (fractions of the side), center x, center y in [0, 1]


def draw_augmentation(n: int, generator: torch.Generator, aug: Augmentation) -> Draw:
    """The random numbers of ``n`` images, drawn in a fixed order from ``generator``."""
    d = Draw()
    if aug.resized_crop_scale is not None:
        lo, hi = aug.resized_crop_scale
        area = torch.empty(n).uniform_(lo, hi, generator=generator)
        log_ratio = torch.empty(n).uniform_(math.log(aug.resized_crop_ratio[0]), math.log(aug.resized_crop_ratio[1]),
                                            generator=generator)
        ratio = torch.exp(log_ratio)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        u = torch.rand(n, generator=generator)
        v = torch.rand(n, generator=generator)
        d.box = torch.stack([w, h, w / 2 + u * (1 - w), h / 2 + v * (1 - h)], 1)
    elif aug.pad_crop:
        d.dy = torch.randint(0, 2 * aug.pad_crop + 1, (n,), generator=generator)
        d.dx = torch.randint(0, 2 * aug.pad_crop + 1, (n,), generator=generator)
    if aug.flip:
        d.mirror = torch.rand(n, generator=generator) < 0.5
    return d


def pad_crop(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Crop each image back to its size at offset ``(dy, dx)`` of its ``pad``-padded copy."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate" if x.is_floating_point() else "constant")
    # Gather rows (over the padded width), then columns.
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 3, h, w + 2 * pad)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 3, h, w)
    y = torch.gather(padded, 2, rows)
    return torch.gather(y, 3, cols)


def resized_crop(x: torch.Tensor, box: torch.Tensor, mirror: torch.Tensor | None, size: int) -> torch.Tensor:
    """Float images ``(n, c, h, w)``: each ``box`` (width, height, center; fractions) resized to ``size`` x ``size``,
    mirrored where ``mirror``. One bilinear ``grid_sample`` for the batch; border pixels repeat outside the image."""
    n = x.shape[0]
    w, h, cx, cy = box.unbind(1)
    sx = w if mirror is None else torch.where(mirror, -w, w)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def normalize(x: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel."""
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def to_float(images: torch.Tensor, resolution: int, mean: tuple[float, float, float],
             std: tuple[float, float, float]) -> torch.Tensor:
    """uint8 images as normalized floats at ``resolution`` (bilinear, antialiased when shrinking)."""
    x = images.float().div_(255.0)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < x.shape[-1])
    return normalize(x, mean, std)


def augment(images: torch.Tensor, d: Draw, aug: Augmentation, resolution: int, mean: tuple[float, float, float],
            std: tuple[float, float, float]) -> torch.Tensor:
    """A batch of uint8 images augmented with the numbers ``d``, as normalized floats at ``resolution``."""
    if d.box is not None:
        x = resized_crop(images.float().div_(255.0), d.box, d.mirror, resolution)
        return normalize(x, mean, std)
    x = images
    if d.dy is not None:
        x = pad_crop(x, aug.pad_crop, d.dy, d.dx)
    if d.mirror is not None:
        x = torch.where(d.mirror.view(-1, 1, 1, 1), x.flip(3), x)
    return to_float(x, resolution, mean, std)
