"""How well a trained supernet ranks its subnets.

- top-1 of the largest and smallest subnets (BN recalibrated);
- Spearman correlation of top-1 with MACs over random subnets (100 by default);
- ranking fidelity: Kendall's tau between supernet-inherited top-1 and top-1 after a
  short standalone fine-tune of each extracted subnet, for subnets spread over the MAC
  range (8 by default).

    python experiments/benchmarks/bench_mbv3_fidelity.py --train-config experiments/configs/mbv3_tiny_imagenet.yaml \
        [--checkpoint results/mbv3/tiny_imagenet/supernet.pt] [--subnets 100] [--finetune 8 --finetune-steps 200]

Writes results/mbv3/fidelity_<data kind>.json.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_mbv3_common import write_result
from scipy.stats import kendalltau, spearmanr

from linas.config_io import load_yaml, parse
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.mobilenetv3 import max_config, min_config
from supernets.mobilenetv3.data import load_split
from supernets.mobilenetv3.evaluation import top1
from supernets.mobilenetv3.trainer import TrainerConfig, param_groups


def finetune(subnet: torch.nn.Module, train, cfg: TrainerConfig, steps: int, lr: float, seed: int) -> None:
    """A short standalone fine-tune of a static subnet (SGD, cosine, labels only)."""
    optimizer = torch.optim.SGD(param_groups(subnet, cfg.train.weight_decay), lr=lr, momentum=0.9, nesterov=True)
    generator = torch.Generator().manual_seed(seed)
    subnet.train()
    step = 0
    while step < steps:
        for x, y in train.train_batches(cfg.train.resolution, cfg.train.batch_size, generator,
                                        cfg.data.pad_crop, cfg.data.flip):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(subnet(x), y, label_smoothing=cfg.train.label_smoothing).backward()
            optimizer.step()
            step += 1
            if step >= steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--subnets", type=int, default=100)
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--calib-images", type=int, default=2000)
    parser.add_argument("--finetune", type=int, default=8)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--finetune-lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = parse(TrainerConfig, load_yaml(args.train_config), where=args.train_config)
    checkpoint = args.checkpoint or str(Path(cfg.output) / "supernet.pt")
    r = cfg.train.resolution
    space = get_space("ofa_mbv3")
    evaluator = make_evaluator("ofa_mbv3_supernet", space, {
        "checkpoint": checkpoint, "data": cfg.data.model_dump(), "resolution": r, "calib_images": args.calib_images,
        "val_images": args.val_images, "latency": "measured", "latency_repeats": 3, "threads": args.threads})
    start = time.perf_counter()
    largest, smallest = evaluator.evaluate_one(max_config()), evaluator.evaluate_one(min_config())
    rows = []
    for genome in space.sample_unique(np.random.default_rng(0), args.subnets):
        config = space.to_config(genome)
        rows.append({"key": space.key(genome), **evaluator.evaluate_one(config)})
        if len(rows) % 10 == 0:
            print(f"{len(rows)}/{args.subnets} random subnets, {time.perf_counter() - start:.0f} s", flush=True)
    rho = spearmanr([x["top1"] for x in rows], [x["macs"] for x in rows]).statistic

    # Fine-tune subnets at evenly spaced MAC quantiles of the random sample.
    chosen = sorted(rows, key=lambda x: x["macs"])
    picks = [chosen[int(round(q * (len(chosen) - 1)))] for q in np.linspace(0, 1, args.finetune)]
    train = load_split(cfg.data, "train")
    tuned = []
    for i, row in enumerate(picks):
        config = space.to_config(space.from_key(row["key"]))
        evaluator.supernet.set_active_subnet(config)
        subnet = evaluator.supernet.get_active_subnet()
        finetune(subnet, train, cfg, args.finetune_steps, args.finetune_lr, seed=i)
        tuned.append({"key": row["key"], "macs": row["macs"], "inherited_top1": row["top1"],
                      "finetuned_top1": top1(subnet, evaluator.val, r)})
        print(f"fine-tuned {i + 1}/{len(picks)}, {time.perf_counter() - start:.0f} s", flush=True)
    tau = kendalltau([t["inherited_top1"] for t in tuned], [t["finetuned_top1"] for t in tuned]).statistic
    write_result(f"fidelity_{cfg.data.kind}", {
        "checkpoint": checkpoint, "resolution": r, "val_images": len(evaluator.val),
        "calib_images": len(evaluator.calib), "top1_largest": largest["top1"], "top1_smallest": smallest["top1"],
        "spearman_top1_vs_macs": round(float(rho), 4), "random_subnets": len(rows),
        "kendall_tau_inherited_vs_finetuned": round(float(tau), 4), "finetune_steps": args.finetune_steps,
        "finetune_lr": args.finetune_lr, "finetuned": tuned, "wall_s": round(time.perf_counter() - start, 1),
        "rows": rows})


if __name__ == "__main__":
    main()
