"""Cost of evaluating one subnet with the ``ofa_mbv3_supernet`` evaluator.

Per-subnet wall time of the evaluator (extraction, BN recalibration on the calibration
images, top-1 on the validation images, lookup-table latency) against plain inference
of the same, already extracted, static subnet over the same validation images; the
ratio shows what recalibration and extraction add. Peak memory is reported.

    python experiments/benchmarks/bench_mbv3_eval.py --train-config experiments/configs/mbv3_digits_train.yaml \
        --lut runs/mbv3_digits/lut.json [--subnets 10]

Writes results/mbv3/eval_time_<data kind>.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from bench_mbv3_common import peak_rss_mb, write_result

from linas.config_io import load_yaml, parse
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.mobilenetv3.evaluation import top1
from supernets.mobilenetv3.trainer import TrainerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--checkpoint", help="default: OUTPUT/supernet.pt of the training config")
    parser.add_argument("--lut", required=True)
    parser.add_argument("--calib-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--subnets", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = parse(TrainerConfig, load_yaml(args.train_config), where=args.train_config)
    checkpoint = args.checkpoint or str(Path(cfg.output) / "supernet.pt")
    r = cfg.train.resolution
    options = {"checkpoint": checkpoint, "data": cfg.data.model_dump(), "resolution": r,
               "calib_images": args.calib_images, "val_images": args.val_images, "lut": args.lut,
               "threads": args.threads}
    space = get_space("ofa_mbv3")
    start = time.perf_counter()
    evaluator = make_evaluator("ofa_mbv3_supernet", space, options)
    setup_s = time.perf_counter() - start
    rss_after_setup = peak_rss_mb()
    evaluate, plain = [], []
    for genome in space.sample_unique(np.random.default_rng(0), args.subnets):
        config = space.to_config(genome)
        start = time.perf_counter()
        result = evaluator.evaluate_one(config)
        evaluate.append(time.perf_counter() - start)
        subnet = evaluator.supernet.get_active_subnet().eval()
        start = time.perf_counter()
        with torch.no_grad():
            top1(subnet, evaluator.val, r, evaluator.options.batch_size)
        plain.append(time.perf_counter() - start)
    write_result(f"eval_time_{cfg.data.kind}", {
        "checkpoint": checkpoint, "resolution": r, "calib_images": len(evaluator.calib),
        "val_images": len(evaluator.val), "subnets": len(evaluate), "threads": args.threads,
        "setup_s": round(setup_s, 2), "rss_after_setup_mb": round(rss_after_setup, 1),
        "evaluate_one_s": {"median": statistics.median(evaluate), "min": min(evaluate)},
        "plain_inference_s": {"median": statistics.median(plain), "min": min(plain)},
        "ratio_median": round(statistics.median(evaluate) / statistics.median(plain), 3),
        "last_result": result})


if __name__ == "__main__":
    main()
