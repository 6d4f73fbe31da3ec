"""Cost of weight sharing in training: supernet step vs the same network trained static.

Times one SGD step (forward, backward, update) of the supernet with its largest subnet
active against the same step of that subnet extracted as a static network (target
ratio <= 1.3), and reports the full sandwich step (largest + smallest + N random) too.

    python experiments/benchmarks/bench_mbv3_train_step.py [--width 0.5] [--resolution 32] [--batch 64]

Writes results/mbv3/train_step.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from bench_mbv3_common import write_result

from linas.config_io import parse
from supernets.mobilenetv3 import OFAMobileNetV3, max_config
from supernets.mobilenetv3.data import ImageSet
from supernets.mobilenetv3.trainer import SandwichTrainer, TrainerConfig


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i >= 2:  # the first steps allocate buffers
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution)
    y = torch.randint(0, args.classes, (args.batch,))

    supernet = OFAMobileNetV3(n_classes=args.classes, width_mult=args.width)
    supernet.set_active_subnet(max_config())
    static = supernet.get_active_subnet()
    # Interleave the two so that load from other processes hits both alike.
    sup, sta = [], []
    for _ in range(3):
        sup += step_time(supernet, x, y, args.repeats)
        sta += step_time(static, x, y, args.repeats)

    images = ImageSet((torch.rand(args.batch * 4, 3, args.resolution, args.resolution) * 255).to(torch.uint8),
                      torch.randint(0, args.classes, (args.batch * 4,)), args.classes)
    config = parse(TrainerConfig, {"supernet": "ofa_mbv3", "data": {"kind": "digits"},
                                   "model": {"width_mult": args.width},
                                   "train": {"batch_size": args.batch, "resolution": args.resolution, "n_random": 2},
                                   "output": "/tmp/unused"})
    trainer = SandwichTrainer(config, images)
    sandwich = []
    for i in range(args.repeats + 1):
        start = time.perf_counter()
        trainer.train_step(x, y)
        if i:
            sandwich.append(time.perf_counter() - start)
    ratio_median = statistics.median(sup) / statistics.median(sta)
    write_result("train_step", {
        "width_mult": args.width, "resolution": args.resolution, "batch": args.batch, "threads": args.threads,
        "supernet_largest_step_s": {"min": min(sup), "median": statistics.median(sup)},
        "static_largest_step_s": {"min": min(sta), "median": statistics.median(sta)},
        "ratio_min": round(min(sup) / min(sta), 3), "ratio_median": round(ratio_median, 3), "target": "<= 1.3",
        "sandwich_step_s_largest_smallest_2random": {"min": min(sandwich), "median": statistics.median(sandwich)}})


if __name__ == "__main__":
    main()
