"""How well a cheap top-1 measurement orders subnets like the full one (the objective of experiment (b)).

The fidelity benchmark (bench_mbv3_fidelity.py; results/mbv3/fidelity_tiny_imagenet.json) measured
100 random subnets of the 64x64 Tiny-ImageNet supernet on all 10,000 val images after BN
recalibration on 2,000 training images. Here ``--n`` of them (fixed ``--seed``) are measured again
with the search evaluator of experiments/configs/tiny_imagenet_mbv3_v2.yaml under each setting of
``--settings`` (``VAL:CALIB:CALIB_SEED``: val images, BN calibration images, calibration subset
seed), and Spearman rho / Kendall tau against the full measurement are reported with the median
seconds per subnet (one thread, shared CPU). A setting whose calibration images are the fidelity
benchmark's own (2000 with seed 0) shares its BN statistics, so its correlation is an upper bound.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_mbv3_objective_noise.py \
        [--n 30] [--settings 2000:500:0 5000:500:0 2000:2000:1]

Needs Tiny-ImageNet unpacked at ~/.cache/linas/data/tiny-imagenet-200. Writes
results/mbv3/tiny_imagenet_v2/objective_noise.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from linas.config import load_experiment  # noqa: E402
from linas.evaluator import make_evaluator  # noqa: E402
from linas.spaces import get_space  # noqa: E402

CONFIG = "experiments/configs/tiny_imagenet_mbv3_v2.yaml"
FIDELITY = "results/mbv3/fidelity_tiny_imagenet.json"


def setting(text: str) -> tuple[int, int, int]:
    try:
        val, calib, seed = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VAL:CALIB:CALIB_SEED, got '{text}'") from None
    return val, calib, seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settings", type=setting, nargs="+",
                        default=[setting(s) for s in ("2000:500:0", "5000:500:0", "2000:2000:1")])
    parser.add_argument("--out", default="results/mbv3/tiny_imagenet_v2/objective_noise.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_experiment(ROOT / CONFIG)
    space = get_space(config.space.name, **config.space.options)
    fidelity = json.loads((ROOT / FIDELITY).read_text())
    rows = fidelity["rows"]
    rng = np.random.default_rng(args.seed)
    picked = [rows[i] for i in sorted(rng.choice(len(rows), min(args.n, len(rows)), replace=False))]
    full = [r["top1"] for r in picked]
    out = ROOT / args.out
    keys = [r["key"] for r in picked]
    old = json.loads(out.read_text()) if out.is_file() else {}
    results = old.get("settings", []) if old.get("keys") == keys else []  # settings measured before are kept
    done = {(r["val_images"], r["calib_images"], r["calib_seed"]) for r in results}
    for val, calib, calib_seed in args.settings:
        if (val, calib, calib_seed) in done:
            continue
        options = {**config.evaluator.options, "val_images": val, "calib_images": calib,
                   "calib_batch": min(calib, 250), "calib_seed": calib_seed}
        evaluator = make_evaluator(config.evaluator.name, space, options)
        cheap, seconds = [], []
        for r in picked:
            start = time.perf_counter()
            cheap.append(evaluator.evaluate_one(space.to_config(space.from_key(r["key"])))["top1"])
            seconds.append(time.perf_counter() - start)
        results.append({
            "val_images": val, "calib_images": calib, "calib_seed": calib_seed,
            "spearman_rho": round(float(spearmanr(full, cheap)[0]), 4),
            "kendall_tau": round(float(kendalltau(full, cheap)[0]), 4),
            "range": [min(cheap), max(cheap)], "median_seconds": round(statistics.median(seconds), 3),
            "top1": cheap})
        print(json.dumps({k: v for k, v in results[-1].items() if k != "top1"}), flush=True)
        out.write_text(json.dumps({  # after each setting, so that a stopped run keeps what it measured
            "reference": f"{FIDELITY}: top-1 on {fidelity['val_images']} val images, "
                         f"BN calibrated on {fidelity['calib_images']} (seed 0)",
            "n": len(picked), "seed": args.seed, "keys": keys, "reference_top1": full,
            "reference_range": [min(full), max(full)], "settings": results,
            "machine": "x86_64, torch threads 1, shared CPU", "date": time.strftime("%Y-%m-%d %H:%M:%S")},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
