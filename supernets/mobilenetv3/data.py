"""Image data for supernet training and evaluation, held in memory as uint8 tensors.

Three layouts are read:

- ``imagefolder``: ``ROOT/<split>/<class>/*.{jpg,png,...}`` (CIFAR-10 JPEG, small ImageNet subsets);
- ``tiny_imagenet``: Tiny-ImageNet-200 (``train/<wnid>/images/*.JPEG``; validation labels
  in ``val/val_annotations.txt``);
- ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), split
  into train/val with a fixed seed.

Images are decoded once to ``load_size`` x ``load_size`` and cached as ``.npy`` under
``~/.cache/linas/data/decoded`` (never in the repository), so epochs, BN calibration and
every subnet evaluation reuse the same tensors. Augmentation (random crop with padding,
horizontal flip) runs on whole batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from linas.config_io import StrictModel
from linas.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CACHE = Path("~/.cache/linas/data/decoded").expanduser()


class DataSettings(StrictModel):
    """Where the images are and how they are prepared (the ``data:`` block of a config)."""

    kind: Literal["imagefolder", "tiny_imagenet", "digits"]
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    load_size: int = 64
    val_fraction: float = 0.25  # digits only: held-out share
    split_seed: int = 0  # digits only
    flip: bool = True  # digits: False (mirrored digits are other digits)
    pad_crop: int = 4  # random crop after padding by this many pixels


@dataclass
class ImageSet:
    """Images as a uint8 tensor ``(n, 3, s, s)`` with integer labels."""

    images: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int) -> ImageSet:
        """A fixed-seed random subset of ``n`` images in random order (``n`` None: all, as stored).

        The order stays random, never sorted: ImageFolder and Tiny-ImageNet store images
        class by class, and BN recalibration batches taken in that order would each hold
        a few classes, biasing the recalibrated variances low.
        """
        if n is None:
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).choice(len(self), min(n, len(self)), replace=False))
        return ImageSet(self.images[idx], self.labels[idx], self.n_classes, self.mean, self.std)

    def to_float(self, images: torch.Tensor, resolution: int) -> torch.Tensor:
        """Normalized float images at ``resolution`` (bilinear, antialiased when shrinking)."""
        x = images.float().div_(255.0)
        if x.shape[-1] != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=resolution < x.shape[-1])
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def eval_batches(self, resolution: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Deterministic batches in order, no augmentation."""
        for start in range(0, len(self), batch_size):
            yield (self.to_float(self.images[start:start + batch_size], resolution),
                   self.labels[start:start + batch_size])

    def train_batches(self, resolution: int, batch_size: int, generator: torch.Generator, pad_crop: int = 4,
                      flip: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled epoch of augmented batches (drops the last partial batch)."""
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(self) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            x = self.images[idx]
            if pad_crop:
                x = _random_crop(x, pad_crop, generator)
            if flip:
                mirror = torch.rand(len(idx), generator=generator) < 0.5
                x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(3), x)
            yield self.to_float(x, resolution), self.labels[idx]


def _random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate" if x.is_floating_point() else "constant")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    # Gather rows (over the padded width), then columns.
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 3, h, w + 2 * pad)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 3, h, w)
    y = torch.gather(padded, 2, rows)
    return torch.gather(y, 3, cols)


def load_split(settings: DataSettings, split: str) -> ImageSet:
    """The ``split`` ("train" or "val") of the configured data, decoded and cached."""
    if settings.kind == "digits":
        return _digits(settings, split)
    root = _root(settings)
    name = settings.train_split if split == "train" else settings.val_split
    key = hashlib.sha256(f"{root.resolve()}|{settings.kind}|{name}|{settings.load_size}".encode()).hexdigest()[:12]
    cache = CACHE / f"{settings.kind}-{root.name}-{name}-{settings.load_size}-{key}"
    if (cache / "labels.npy").is_file():
        images = np.load(cache / "images.npy", allow_pickle=False, mmap_mode="c")  # copy-on-write: shared page cache, file never modified
        labels = np.load(cache / "labels.npy", allow_pickle=False)
        n_classes = int(np.load(cache / "n_classes.npy", allow_pickle=False))
        return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long(), n_classes)
    if settings.kind == "tiny_imagenet":
        files, labels, n_classes = _tiny_imagenet_files(root, split)
    else:
        files, labels, n_classes = _imagefolder_files(root, name)
    images = _decode(files, settings.load_size)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / "images.npy", images)
    np.save(cache / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(cache / "n_classes.npy", np.asarray(n_classes))
    return ImageSet(torch.from_numpy(images), torch.as_tensor(labels, dtype=torch.long), n_classes)


def _root(settings: DataSettings) -> Path:
    if not settings.root:
        raise ConfigError(f"data: kind '{settings.kind}' needs 'root'")
    root = Path(settings.root).expanduser()
    if not root.is_dir():
        expected = ("train/<wnid>/images/*.JPEG and val/val_annotations.txt" if settings.kind == "tiny_imagenet"
                    else f"{settings.train_split}/<class>/*.jpg and {settings.val_split}/<class>/*.jpg")
        raise ConfigError(f"data: {root} is not a folder (expected {expected}; unpack the archive "
                          f"into ~/.cache/linas/data, not into the repository)")
    return root


def _imagefolder_files(root: Path, split: str) -> tuple[list[Path], list[int], int]:
    folder = root / split
    if not folder.is_dir():
        raise ConfigError(f"data: {folder} is missing (ImageFolder layout: {root}/{split}/<class>/<image>)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"data: {folder} has no class subfolders (expected {folder}/<class>/<image>)")
    files, labels = [], []
    for label, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
    return files, labels, len(classes)


def _tiny_imagenet_files(root: Path, split: str) -> tuple[list[Path], list[int], int]:
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise ConfigError(f"data: {wnids_file} is missing (is {root} the tiny-imagenet-200 folder?)")
    wnids = sorted(line.strip() for line in wnids_file.read_text().splitlines() if line.strip())
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    if split == "train":
        for w in wnids:
            folder = root / "train" / w / "images"
            if not folder.is_dir():
                raise ConfigError(f"data: {folder} is missing (Tiny-ImageNet layout: train/<wnid>/images/*.JPEG)")
            for f in sorted(folder.iterdir()):
                files.append(f)
                labels.append(index[w])
    else:
        annotations = root / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise ConfigError(f"data: {annotations} is missing (Tiny-ImageNet validation labels)")
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                files.append(root / "val" / "images" / parts[0])
                labels.append(index[parts[1]])
    return files, labels, len(wnids)


def _decode(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image
    from tqdm import tqdm

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(tqdm(files, desc="decoding images", unit="img", mininterval=5)):
        with Image.open(f) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = _center_resize(im, size)
            out[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    return out


def _center_resize(im, size: int):
    from PIL import Image

    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _digits(settings: DataSettings, split: str) -> ImageSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float() / 16.0  # (n, 8, 8) in [0, 1]
    x = F.interpolate(images.unsqueeze(1), size=(settings.load_size, settings.load_size), mode="bilinear",
                      align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    order = np.random.default_rng(settings.split_seed).permutation(len(labels))
    n_val = int(round(len(labels) * settings.val_fraction))
    idx = torch.from_numpy(order[n_val:] if split == "train" else order[:n_val])
    return ImageSet(x[idx], labels[idx], 10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
