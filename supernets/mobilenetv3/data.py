"""Image data for supernet training and evaluation (the names other modules import from here).

The code lives by concept in:

- :mod:`.datasets`: ``DataSettings`` (a config's ``data:`` block), ``load_split``, the
  ImageFolder / Tiny-ImageNet / digits layouts and the decoded cache (``CACHE``);
- :mod:`.imagesets`: ``ImageData`` with ``ImageSet`` (in memory) and ``ImageFiles``
  (streamed from disk, decoded per batch by threads), their subsets and batches;
- :mod:`.decoding`: image files to uint8 arrays (PIL);
- :mod:`.transforms`: training augmentation (pad-crop or random-resized-crop, flip) and
  normalization.

Example::

    from supernets.mobilenetv3.data import DataSettings, load_split
    train = load_split(DataSettings(kind="digits", load_size=32, flip=False), "train")
"""

from __future__ import annotations

from .datasets import CACHE, IMAGE_SUFFIXES, DataSettings, load_split
from .decoding import decode_files, decode_one
from .imagesets import ImageData, ImageFiles, ImageSet, subset_index
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Augmentation

__all__ = ["CACHE", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SUFFIXES", "Augmentation", "DataSettings", "ImageData",
           "ImageFiles", "ImageSet", "decode_files", "decode_one", "load_split", "subset_index"]
