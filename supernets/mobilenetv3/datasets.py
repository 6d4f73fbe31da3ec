"""Where a split's images are and how they are loaded: ``DataSettings`` (a config's ``data:`` block) and ``load_split``.

Three layouts are read:

- ``imagefolder``: ``ROOT/<split>/<class>/*.{jpg,png,...}`` (CIFAR-10 JPEG, ImageNet and its subsets);
- ``tiny_imagenet``: Tiny-ImageNet-200 (``train/<wnid>/images/*.JPEG``; validation labels
  in ``val/val_annotations.txt``);
- ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), split
  into train/val with a fixed seed.

By default (``stream: false``) a split is decoded once (:mod:`.decoding`) and cached as
``.npy`` under ``~/.cache/linas/data/decoded`` (never in the repository), so epochs, BN
calibration and every subnet evaluation reuse the same tensors
(:class:`~.imagesets.ImageSet`). That needs the whole split in memory: full ImageNet at
load size 256 is about 250 GB. With ``stream: true`` (``imagefolder`` and
``tiny_imagenet``; digits are always in memory) a split holds file paths and labels only
(:class:`~.imagesets.ImageFiles`) and is decoded per batch.

A missing root or split, a split without class folders or images, and an unreadable
image (named) raise a one-line :class:`~linas.errors.ConfigError`.

Example (full ImageNet, OFA's evaluation crop)::

    data: {kind: imagefolder, root: ~/data/imagenet, load_size: 224, crop_ratio: 0.875, stream: true, workers: 8}
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from linas.config_io import StrictModel
from linas.errors import ConfigError

from .decoding import decode_files
from .imagesets import ImageData, ImageFiles, ImageSet
from .transforms import Augmentation

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
    crop_ratio: float = Field(1.0, gt=0.0, le=1.0)  # shorter side resized to load_size / crop_ratio, then center crop
    stream: bool = False  # imagefolder/tiny_imagenet: keep file paths, decode per batch (no cache)
    workers: int = Field(4, ge=0)  # decoding threads (streamed batches, first decode of a split); 0: none
    # Training augmentation: random-resized-crop with this area range (e.g. [0.25, 1.0]) instead of pad_crop.
    resized_crop_scale: tuple[float, float] | None = None
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)

    @model_validator(mode="after")
    def _check_resized_crop(self) -> DataSettings:
        if self.resized_crop_scale is not None:
            lo, hi = self.resized_crop_scale
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"resized_crop_scale {list(self.resized_crop_scale)} must satisfy "
                                 f"0 < low <= high <= 1")
        lo, hi = self.resized_crop_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(f"resized_crop_ratio {list(self.resized_crop_ratio)} must satisfy 0 < low <= high")
        return self

    def augmentation(self) -> Augmentation:
        """How training batches are augmented."""
        return Augmentation(pad_crop=self.pad_crop, flip=self.flip, resized_crop_scale=self.resized_crop_scale,
                            resized_crop_ratio=self.resized_crop_ratio)

    def identity(self) -> dict:
        """The settings that decide the images and labels (not ``stream`` nor ``workers``: same pixels;
        not the training augmentation when it is the default pad-crop: earlier identities stay)."""
        exclude = {"stream", "workers"} | ({"crop_ratio"} if self.crop_ratio == 1.0 else set())
        if self.resized_crop_scale is None:
            exclude |= {"resized_crop_scale", "resized_crop_ratio"}
        return self.model_dump(mode="json", exclude=exclude)


def load_split(settings: DataSettings, split: str) -> ImageData:
    """The ``split`` ("train" or "val") of the configured data: decoded and cached, or streamed."""
    if settings.kind == "digits":
        return _digits(settings, split)
    root = _root(settings)
    name = settings.train_split if split == "train" else settings.val_split
    if settings.stream:
        files, labels, n_classes = _list_files(settings, root, split)
        return ImageFiles(files, torch.as_tensor(labels, dtype=torch.long), n_classes, settings.load_size,
                          settings.workers, settings.crop_ratio)
    crop = "" if settings.crop_ratio == 1.0 else f"|crop{settings.crop_ratio}"  # earlier caches keep their keys
    key = f"{root.resolve()}|{settings.kind}|{name}|{settings.load_size}{crop}"
    key = hashlib.sha256(key.encode()).hexdigest()[:12]
    cache = CACHE / f"{settings.kind}-{root.name}-{name}-{settings.load_size}-{key}"
    if (cache / "labels.npy").is_file():
        images = np.load(cache / "images.npy", allow_pickle=False, mmap_mode="c")  # copy-on-write: shared page cache, file never modified
        labels = np.load(cache / "labels.npy", allow_pickle=False)
        n_classes = int(np.load(cache / "n_classes.npy", allow_pickle=False))
        return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long(), n_classes)
    files, labels, n_classes = _list_files(settings, root, split)
    images = decode_files(files, settings.load_size, settings.workers, settings.crop_ratio)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / "images.npy", images)
    np.save(cache / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(cache / "n_classes.npy", np.asarray(n_classes))
    return ImageSet(torch.from_numpy(images), torch.as_tensor(labels, dtype=torch.long), n_classes)


def _list_files(settings: DataSettings, root: Path, split: str) -> tuple[list[str], list[int], int]:
    if settings.kind == "tiny_imagenet":
        return _tiny_imagenet_files(root, split)
    return _imagefolder_files(root, settings.train_split if split == "train" else settings.val_split)


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


def _imagefolder_files(root: Path, split: str) -> tuple[list[str], list[int], int]:
    folder = root / split
    if not folder.is_dir():
        raise ConfigError(f"data: {folder} is missing (ImageFolder layout: {root}/{split}/<class>/<image>)")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise ConfigError(f"data: {folder} has no class subfolders (expected {folder}/<class>/<image>)")
    files, labels = [], []
    for label, c in enumerate(classes):
        class_folder = os.path.join(folder, c)
        for name in sorted(os.listdir(class_folder)):
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                files.append(os.path.join(class_folder, name))
                labels.append(label)
    if not files:
        raise ConfigError(f"data: {folder} has class subfolders but no images "
                          f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, labels, len(classes)


def _tiny_imagenet_files(root: Path, split: str) -> tuple[list[str], list[int], int]:
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise ConfigError(f"data: {wnids_file} is missing (is {root} the tiny-imagenet-200 folder?)")
    wnids = sorted(line.strip() for line in wnids_file.read_text().splitlines() if line.strip())
    if not wnids:
        raise ConfigError(f"data: {wnids_file} names no classes")
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    if split == "train":
        for w in wnids:
            folder = root / "train" / w / "images"
            if not folder.is_dir():
                raise ConfigError(f"data: {folder} is missing (Tiny-ImageNet layout: train/<wnid>/images/*.JPEG)")
            for name in sorted(os.listdir(folder)):
                files.append(os.path.join(folder, name))
                labels.append(index[w])
    else:
        annotations = root / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise ConfigError(f"data: {annotations} is missing (Tiny-ImageNet validation labels)")
        for number, line in enumerate(annotations.read_text().splitlines(), 1):
            parts = line.split("\t")
            if len(parts) >= 2:
                if parts[1] not in index:
                    raise ConfigError(f"data: {annotations} line {number}: class {parts[1]} is not in {wnids_file}")
                files.append(os.path.join(root, "val", "images", parts[0]))
                labels.append(index[parts[1]])
    if not files:
        raise ConfigError(f"data: no {split} images under {root} (Tiny-ImageNet layout)")
    return files, labels, len(wnids)


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
