"""Decoding image files into uint8 arrays ``(n, 3, size, size)`` (PIL, optionally by threads).

Each image is converted to RGB, its shorter side resized (bilinear) to ``size /
crop_ratio`` (``crop_ratio`` 1: to ``size``; OFA's ImageNet protocol: 0.875) and its
center ``size`` x ``size`` cropped. An unreadable image (missing, truncated, not an
image) is a one-line :class:`~linas.errors.ConfigError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

from linas.errors import ConfigError

DECODE_CHUNK = 256  # images per task when a whole split or subset is decoded


def decode_files(files: Sequence[str], size: int, workers: int = 0, crop_ratio: float = 1.0) -> np.ndarray:
    """All ``files`` as a uint8 array ``(n, 3, size, size)``, decoded by ``workers`` threads."""
    from tqdm import tqdm

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    chunks = [(lo, min(lo + DECODE_CHUNK, len(files))) for lo in range(0, len(files), DECODE_CHUNK)]
    with tqdm(total=len(files), desc="decoding images", unit="img", mininterval=5) as bar:
        if workers == 0:
            for lo, hi in chunks:
                read_into(out, files, lo, hi, size, crop_ratio)
                bar.update(hi - lo)
            return out
        pool = ThreadPoolExecutor(workers, thread_name_prefix="linas-decode")
        try:
            futures = {pool.submit(read_into, out, files, lo, hi, size, crop_ratio): hi - lo for lo, hi in chunks}
            for future in as_completed(futures):
                future.result()
                bar.update(futures[future])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def read_into(out: np.ndarray, files: Sequence[str], lo: int, hi: int, size: int, crop_ratio: float) -> None:
    for i in range(lo, hi):
        out[i] = decode_one(files[i], size, crop_ratio)


def decode_one(path: str, size: int, crop_ratio: float = 1.0) -> np.ndarray:
    """One image as uint8 ``(3, size, size)``: RGB, shorter side resized to ``size / crop_ratio``, center crop."""
    from PIL import Image

    short = math.ceil(size / crop_ratio)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size) or short != size:
                im = center_resize(im, size, short)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except Exception as exc:  # noqa: BLE001 - missing, truncated, not an image: all one clear error
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"data: cannot read image {path} ({reason})") from None


def center_resize(im, size: int, short: int | None = None):
    """Resize (bilinear) the shorter side to ``short`` (default ``size``), then crop the center ``size`` x ``size``."""
    from PIL import Image

    short = short or size
    w, h = im.size
    scale = short / min(w, h)
    im = im.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))
