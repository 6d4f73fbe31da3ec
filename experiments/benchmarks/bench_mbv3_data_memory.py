"""Memory and time of the evaluator's image subsets: streamed from disk vs decoded into memory.

Writes a synthetic ImageFolder (``--images`` training and a quarter as many validation
JPEGs, ``--width`` x ``--height`` pixels, 100 classes) into a temporary folder, then builds
what the ``ofa_mbv3_supernet`` evaluator builds (a calibration subset of the training split
and a validation subset, each decoded into memory once) in three modes, each in a fresh
process so peak memory is its own:

- ``memory_cold``: ``stream: false`` with an empty cache: every image of both splits is
  decoded (and the ``.npy`` cache written) before the subsets are taken;
- ``memory_cached``: ``stream: false`` again, reading that cache (memory-mapped);
- ``stream``: ``stream: true``: the files are listed, only the subsets are decoded.

Peak RSS is ``getrusage`` ``ru_maxrss``; ``data_rss_mb`` is the peak minus the RSS after
importing torch and the package. The subsets' pixel checksums must agree across modes.

    python experiments/benchmarks/bench_mbv3_data_memory.py [--images 20000] [--calib 500] [--val 1000]

Writes results/mbv3/data_memory_imagefolder.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = ("memory_cold", "memory_cached", "stream")


def write_imagefolder(root: Path, n_train: int, n_val: int, width: int, height: int, classes: int,
                      seed: int = 0) -> None:
    """Smooth random images with a little noise (JPEG sizes like photos', not like pure noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            folder = root / split / f"class{i % classes:03d}"
            if i < classes:
                folder.mkdir(parents=True, exist_ok=True)
            coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                             Image.BILINEAR)
            pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:07d}.jpg", quality=90)


def child(args: argparse.Namespace) -> None:
    """One mode in this process: what the evaluator's __init__ does with the data; prints a JSON line."""
    import resource

    import torch

    from supernets.mobilenetv3 import datasets, decoding
    from supernets.mobilenetv3.data import DataSettings, load_split

    torch.set_num_threads(1)
    datasets.CACHE = Path(args.cache)
    decoded = []
    decode_one = decoding.decode_one

    def counting(path: str, *args) -> np.ndarray:
        decoded.append(path)
        return decode_one(path, *args)

    decoding.decode_one = counting

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    baseline = rss_mb()
    settings = DataSettings(kind="imagefolder", root=args.root, load_size=args.load_size,
                            stream=args.child == "stream", workers=args.workers)
    start = time.perf_counter()
    calib = load_split(settings, "train").subset(args.calib, 0).materialize()
    val = load_split(settings, "val").subset(args.val, 0).materialize()
    wall = time.perf_counter() - start
    peak = rss_mb()
    print(json.dumps({"wall_s": round(wall, 3), "peak_rss_mb": round(peak, 1),
                      "baseline_rss_mb": round(baseline, 1), "data_rss_mb": round(peak - baseline, 1),
                      "images_decoded": len(decoded), "calib_images": len(calib), "val_images": len(val),
                      "checksum": int(calib.images.sum()) + int(val.images.sum()),
                      "subset_mb": round((calib.images.numel() + val.images.numel()) / 2**20, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="training images (validation: a quarter)")
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--load-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--calib", type=int, default=500)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from bench_mbv3_common import write_result

    with tempfile.TemporaryDirectory(prefix="linas-bench-data-") as tmp:
        root, cache = Path(tmp) / "imagefolder", Path(tmp) / "cache"
        n_val = args.images // 4
        start = time.perf_counter()
        write_imagefolder(root, args.images, n_val, args.width, args.height, args.classes)
        write_s = time.perf_counter() - start
        disk_mb = sum(f.stat().st_size for f in root.rglob("*.jpg")) / 2**20
        modes = {}
        for mode in MODES:
            command = [sys.executable, __file__, "--child", mode, "--root", str(root), "--cache", str(cache),
                       "--load-size", str(args.load_size), "--calib", str(args.calib), "--val", str(args.val),
                       "--workers", str(args.workers)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            modes[mode] = json.loads(result.stdout.strip().splitlines()[-1])
            print(mode, modes[mode], flush=True)
    checksums = {m["checksum"] for m in modes.values()}
    if len(checksums) != 1:
        raise SystemExit(f"the modes decoded different subsets: {modes}")
    write_result("data_memory_imagefolder", {
        "train_images": args.images, "val_split_images": n_val, "image_size": [args.width, args.height],
        "load_size": args.load_size, "jpeg_mb_on_disk": round(disk_mb, 1), "write_s": round(write_s, 1),
        "calib_images": args.calib, "val_images": args.val, "workers": args.workers, "modes": modes,
        "stream_vs_cold": {"data_rss_ratio": round(modes["stream"]["data_rss_mb"]
                                                   / max(modes["memory_cold"]["data_rss_mb"], 0.1), 4),
                           "wall_ratio": round(modes["stream"]["wall_s"] / modes["memory_cold"]["wall_s"], 4)},
        "note": "peak_rss_mb at the top level is the parent process (it writes the images); per mode see modes"})


if __name__ == "__main__":
    main()
