"""Image data for supernet training and evaluation: decoded into memory, or streamed from disk.

Three layouts are read:

- ``imagefolder``: ``ROOT/<split>/<class>/*.{jpg,png,...}`` (CIFAR-10 JPEG, ImageNet and its subsets);
- ``tiny_imagenet``: Tiny-ImageNet-200 (``train/<wnid>/images/*.JPEG``; validation labels
  in ``val/val_annotations.txt``);
- ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), split
  into train/val with a fixed seed.

Each image is converted to RGB, its shorter side resized (bilinear) to ``load_size /
crop_ratio`` (``crop_ratio`` 1: to ``load_size``; OFA's ImageNet protocol: 0.875) and its
center ``load_size`` x ``load_size`` cropped.

By default (``stream: false``) a split is decoded once and cached as ``.npy`` under
``~/.cache/linas/data/decoded`` (never in the repository), so epochs, BN calibration and
every subnet evaluation reuse the same tensors (:class:`ImageSet`). That needs the whole
split in memory: full ImageNet at load size 256 is about 250 GB.

With ``stream: true`` (``imagefolder`` and ``tiny_imagenet``; digits are always in
memory) a split holds file paths and labels only (:class:`ImageFiles`), and images are
decoded per batch by ``workers`` threads, the next batches while the current one is used;
a resumed epoch skips its finished batches unread. ``subset`` picks the same images in
both modes and decodes nothing; ``materialize()`` decodes a (small) subset into an
:class:`ImageSet`, as the evaluator does once for its calibration and validation images.

Both modes give the same pixels, the same augmentation (random crop with padding,
horizontal flip, drawn from the caller's generator on whole batches) and the same
normalization, so their batches are equal. A missing root or split, a split without
class folders or images, and an unreadable image (named) raise a one-line
:class:`~linas.errors.ConfigError`.

Example (full ImageNet, OFA's evaluation crop)::

    data: {kind: imagefolder, root: ~/data/imagenet, load_size: 224, crop_ratio: 0.875, stream: true, workers: 8}
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from linas.config_io import StrictModel
from linas.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CACHE = Path("~/.cache/linas/data/decoded").expanduser()
PREFETCH_BATCHES = 2  # streaming: batches being decoded ahead of the one in use
DECODE_CHUNK = 256  # images per task when a whole split or subset is decoded


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

    def identity(self) -> dict:
        """The settings that decide the images and labels (not ``stream`` nor ``workers``: same pixels)."""
        exclude = {"stream", "workers"} | ({"crop_ratio"} if self.crop_ratio == 1.0 else set())
        return self.model_dump(mode="json", exclude=exclude)


class ImageData:
    """Labels, subsets and batches of a split, whether its images are in memory or on disk.

    Subclasses hold ``labels`` (int64), ``n_classes``, ``mean`` and ``std`` and say how the
    uint8 images ``(n, 3, s, s)`` at some positions are obtained (``_batches``).
    """

    labels: torch.Tensor
    n_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int) -> ImageData:
        """A fixed-seed random subset of ``n`` images in random order (``n`` None: all, as stored).

        The order stays random, never sorted: ImageFolder and Tiny-ImageNet store images
        class by class, and BN recalibration batches taken in that order would each hold
        a few classes, biasing the recalibrated variances low.
        """
        if n is None:
            return self
        return self._take(torch.from_numpy(subset_index(len(self), n, seed)))

    def materialize(self) -> ImageSet:
        """The images decoded into memory (a streamed set: decode a small subset once, reuse it)."""
        raise NotImplementedError

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
        keys = [slice(start, start + batch_size) for start in range(0, len(self), batch_size)]
        for key, x in zip(keys, self._batches(keys)):
            yield self.to_float(x, resolution), self.labels[key]

    def train_batches(self, resolution: int, batch_size: int, generator: torch.Generator, pad_crop: int = 4,
                      flip: bool = True, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled epoch of augmented batches (drops the last partial batch).

        ``skip`` leaves out the first batches without reading their images but draws their
        random numbers, so the batches after them are those of a full epoch (a resumed run).
        """
        order = torch.randperm(len(self), generator=generator)
        keys = [order[start:start + batch_size] for start in range(0, len(self) - batch_size + 1, batch_size)]
        for _ in keys[:skip]:
            _draw_augmentation(batch_size, generator, pad_crop, flip)
        keys = keys[skip:]
        for idx, x in zip(keys, self._batches(keys)):
            dy, dx, mirror = _draw_augmentation(len(idx), generator, pad_crop, flip)
            if pad_crop:
                x = _crop(x, pad_crop, dy, dx)
            if flip:
                x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(3), x)
            yield self.to_float(x, resolution), self.labels[idx]

    def _take(self, idx: torch.Tensor) -> ImageData:
        raise NotImplementedError

    def _batches(self, keys: Sequence[slice | torch.Tensor]) -> Iterator[torch.Tensor]:
        """The uint8 images at each key (a slice or an index tensor), in order."""
        raise NotImplementedError


@dataclass
class ImageSet(ImageData):
    """Images in memory as a uint8 tensor ``(n, 3, s, s)`` with integer labels."""

    images: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def materialize(self) -> ImageSet:
        return self

    def _take(self, idx: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[idx], self.labels[idx], self.n_classes, self.mean, self.std)

    def _batches(self, keys: Sequence[slice | torch.Tensor]) -> Iterator[torch.Tensor]:
        for key in keys:
            yield self.images[key]


@dataclass
class ImageFiles(ImageData):
    """Image files with integer labels, decoded to ``load_size`` per batch by ``workers`` threads."""

    files: list[str]
    labels: torch.Tensor
    n_classes: int
    load_size: int
    workers: int = 4
    crop_ratio: float = 1.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def materialize(self) -> ImageSet:
        images = _decode(self.files, self.load_size, self.workers, self.crop_ratio)
        return ImageSet(torch.from_numpy(images), self.labels, self.n_classes, self.mean, self.std)

    def _take(self, idx: torch.Tensor) -> ImageFiles:
        return ImageFiles([self.files[i] for i in idx.tolist()], self.labels[idx], self.n_classes,
                          self.load_size, self.workers, self.crop_ratio, self.mean, self.std)

    def _positions(self, key: slice | torch.Tensor) -> list[int]:
        return list(range(len(self))[key]) if isinstance(key, slice) else key.tolist()

    def _batches(self, keys: Sequence[slice | torch.Tensor]) -> Iterator[torch.Tensor]:
        size = self.load_size
        if self.workers == 0:
            for key in keys:
                files = [self.files[i] for i in self._positions(key)]
                out = np.empty((len(files), 3, size, size), dtype=np.uint8)
                _read_into(out, files, 0, len(files), size, self.crop_ratio)
                yield torch.from_numpy(out)
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="linas-decode")

        def submit(key: slice | torch.Tensor) -> tuple[np.ndarray, list[Future]]:
            files = [self.files[i] for i in self._positions(key)]
            out = np.empty((len(files), 3, size, size), dtype=np.uint8)
            step = max(1, -(-len(files) // self.workers))
            return out, [pool.submit(_read_into, out, files, lo, min(lo + step, len(files)), size, self.crop_ratio)
                         for lo in range(0, len(files), step)]

        try:
            waiting = iter(keys)
            pending = deque(submit(key) for _, key in zip(range(PREFETCH_BATCHES), waiting))
            while pending:
                out, futures = pending.popleft()
                for future in futures:
                    future.result()
                for key in waiting:  # the next batch decodes while this one is used
                    pending.append(submit(key))
                    break
                yield torch.from_numpy(out)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def subset_index(n_total: int, n: int, seed: int) -> np.ndarray:
    """Positions of a fixed-seed random subset of ``min(n, n_total)`` images, in random order."""
    return np.random.default_rng(seed).choice(n_total, min(n, n_total), replace=False)


def _draw_augmentation(n: int, generator: torch.Generator, pad_crop: int,
                       flip: bool) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Crop offsets and mirror flags of ``n`` images, drawn in a fixed order from ``generator``."""
    dy = dx = mirror = None
    if pad_crop:
        dy = torch.randint(0, 2 * pad_crop + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad_crop + 1, (n,), generator=generator)
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
    return dy, dx, mirror


def _crop(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Crop each image back to its size at offset ``(dy, dx)`` of its ``pad``-padded copy."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate" if x.is_floating_point() else "constant")
    # Gather rows (over the padded width), then columns.
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 3, h, w + 2 * pad)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 3, h, w)
    y = torch.gather(padded, 2, rows)
    return torch.gather(y, 3, cols)


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
    images = _decode(files, settings.load_size, settings.workers, settings.crop_ratio)
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


def _decode(files: Sequence[str], size: int, workers: int = 0, crop_ratio: float = 1.0) -> np.ndarray:
    """All ``files`` as a uint8 array ``(n, 3, size, size)``, decoded by ``workers`` threads."""
    from tqdm import tqdm

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    chunks = [(lo, min(lo + DECODE_CHUNK, len(files))) for lo in range(0, len(files), DECODE_CHUNK)]
    with tqdm(total=len(files), desc="decoding images", unit="img", mininterval=5) as bar:
        if workers == 0:
            for lo, hi in chunks:
                _read_into(out, files, lo, hi, size, crop_ratio)
                bar.update(hi - lo)
            return out
        pool = ThreadPoolExecutor(workers, thread_name_prefix="linas-decode")
        try:
            futures = {pool.submit(_read_into, out, files, lo, hi, size, crop_ratio): hi - lo for lo, hi in chunks}
            for future in as_completed(futures):
                future.result()
                bar.update(futures[future])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def _read_into(out: np.ndarray, files: Sequence[str], lo: int, hi: int, size: int, crop_ratio: float) -> None:
    for i in range(lo, hi):
        out[i] = _decode_one(files[i], size, crop_ratio)


def _decode_one(path: str, size: int, crop_ratio: float = 1.0) -> np.ndarray:
    """One image as uint8 ``(3, size, size)``: RGB, shorter side resized to ``size / crop_ratio``, center crop."""
    from PIL import Image

    short = math.ceil(size / crop_ratio)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size) or short != size:
                im = _center_resize(im, size, short)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except Exception as exc:  # noqa: BLE001 - missing, truncated, not an image: all one clear error
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"data: cannot read image {path} ({reason})") from None


def _center_resize(im, size: int, short: int | None = None):
    """Resize (bilinear) the shorter side to ``short`` (default ``size``), then crop the center ``size`` x ``size``."""
    from PIL import Image

    short = short or size
    w, h = im.size
    scale = short / min(w, h)
    im = im.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
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
