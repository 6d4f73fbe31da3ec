"""A split's images and labels, in memory (:class:`ImageSet`) or streamed from disk (:class:`ImageFiles`).

Both give the same pixels, the same augmentation (drawn from the caller's generator on
whole batches, :mod:`.transforms`) and the same normalization, so their batches are
equal. A streamed set holds file paths and labels only, and its images are decoded per
batch by ``workers`` threads, the next batches while the current one is used; a resumed
epoch skips its finished batches unread. ``subset`` picks the same images in both modes
and decodes nothing; ``materialize()`` decodes a (small) subset into an
:class:`ImageSet`, as the evaluator does once for its calibration and validation images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .decoding import decode_files, read_into
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Augmentation, augment, draw_augmentation, to_float

PREFETCH_BATCHES = 2  # streaming: batches being decoded ahead of the one in use


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

    def head(self, n: int) -> ImageData:
        """The first ``n`` images, in order (all when ``n`` is larger)."""
        return self._take(torch.arange(min(int(n), len(self))))

    def materialize(self) -> ImageSet:
        """The images decoded into memory (a streamed set: decode a small subset once, reuse it)."""
        raise NotImplementedError

    def to_float(self, images: torch.Tensor, resolution: int) -> torch.Tensor:
        """Normalized float images at ``resolution`` (bilinear, antialiased when shrinking)."""
        return to_float(images, resolution, self.mean, self.std)

    def eval_batches(self, resolution: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Deterministic batches in order, no augmentation."""
        keys = [slice(start, start + batch_size) for start in range(0, len(self), batch_size)]
        for key, x in zip(keys, self._batches(keys)):
            yield self.to_float(x, resolution), self.labels[key]

    def train_batches(self, resolution: int, batch_size: int, generator: torch.Generator, pad_crop: int = 4,
                      flip: bool = True, skip: int = 0,
                      augmentation: Augmentation | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled epoch of augmented batches (drops the last partial batch).

        ``augmentation`` (default: pad-crop by ``pad_crop`` and ``flip``) says how batches
        are augmented. ``skip`` leaves out the first batches without reading their images
        but draws their random numbers, so the batches after them are those of a full
        epoch (a resumed run).
        """
        aug = augmentation or Augmentation(pad_crop=pad_crop, flip=flip)
        order = torch.randperm(len(self), generator=generator)
        keys = [order[start:start + batch_size] for start in range(0, len(self) - batch_size + 1, batch_size)]
        for _ in keys[:skip]:
            draw_augmentation(batch_size, generator, aug)
        keys = keys[skip:]
        for idx, x in zip(keys, self._batches(keys)):
            d = draw_augmentation(len(idx), generator, aug)
            yield augment(x, d, aug, resolution, self.mean, self.std), self.labels[idx]

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
        images = decode_files(self.files, self.load_size, self.workers, self.crop_ratio)
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
                read_into(out, files, 0, len(files), size, self.crop_ratio)
                yield torch.from_numpy(out)
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="linas-decode")

        def submit(key: slice | torch.Tensor) -> tuple[np.ndarray, list[Future]]:
            files = [self.files[i] for i in self._positions(key)]
            out = np.empty((len(files), 3, size, size), dtype=np.uint8)
            step = max(1, -(-len(files) // self.workers))
            return out, [pool.submit(read_into, out, files, lo, min(lo + step, len(files)), size, self.crop_ratio)
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
