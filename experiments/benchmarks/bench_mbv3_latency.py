"""Lookup-table latency against measured latency over random OFA MobileNetV3 subnets.

Builds the per-block table on this machine, then measures 50 random subnets end to end
(one thread, batch 1) and reports Kendall's tau between the table's sum and the measured
minimum (target >= 0.9). The subnets are measured round-robin over several rounds and
each keeps its minimum, so load from other processes spreads over all of them instead of
ranking whichever ran during a busy spell last; the minimum thread CPU time is reported
as well, being immune to descheduling.

    python experiments/benchmarks/bench_mbv3_latency.py [--width 1.0] [--resolution 160] [--subnets 50]

Writes results/mbv3/latency_lut_vs_measured.json. To check a table an experiment uses
instead of building one (its width, classes and resolution are read from the table):

    python experiments/benchmarks/bench_mbv3_latency.py --lut results/tiny_imagenet_mbv3/lut.json \
        --name latency_lut_vs_measured_tiny_imagenet
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from bench_mbv3_common import write_result

from linas.errors import LinasError
from linas.spaces import get_space
from supernets.mobilenetv3 import OFAMobileNetV3
from supernets.mobilenetv3.latency import LatencyTable, kendall_tau, measure_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--subnets", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lut", help="check this lookup table (JSON) instead of building one")
    parser.add_argument("--name", default="latency_lut_vs_measured", help="results/mbv3/<name>.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    if args.lut:
        try:
            table = LatencyTable.load(args.lut)
        except LinasError as exc:
            parser.error(str(exc))
        meta = table.meta
        if meta.get("threads") != 1 or meta.get("batch_size") != 1:
            parser.error(f"{args.lut}: measured with {meta.get('threads')} threads and batch "
                         f"{meta.get('batch_size')}; this check measures one thread, batch 1")
        args.width, args.classes = float(meta["width_mult"]), int(meta["n_classes"])
        args.resolution = int(meta["resolutions"][0])
        build_s = None
    else:
        table = LatencyTable.build(args.width, args.classes, [args.resolution], repeats=20, progress=False)
        build_s = round(time.perf_counter() - start, 1)
    space = get_space("ofa_mbv3")
    net = OFAMobileNetV3(n_classes=args.classes, width_mult=args.width)
    configs = [space.to_config(g) for g in space.sample_unique(np.random.default_rng(args.seed), args.subnets)]
    rows = []
    for config in configs:
        net.set_active_subnet(config)
        rows.append({"lut_ms": table.predict(config, args.resolution), "macs_m": net.active_macs(args.resolution) / 1e6,
                     "min_ms": float("inf"), "cpu_min_ms": float("inf")})
    for _ in range(args.rounds):
        for config, row in zip(configs, rows):
            net.set_active_subnet(config)
            measured = measure_latency(net.get_active_subnet(), args.resolution, warmup=2, repeats=args.repeats)
            row["min_ms"] = min(row["min_ms"], measured["min_ms"])
            row["cpu_min_ms"] = min(row["cpu_min_ms"], measured["cpu_min_ms"])
    lut = [r["lut_ms"] for r in rows]
    wall = [r["min_ms"] for r in rows]
    cpu = [r["cpu_min_ms"] for r in rows]
    write_result(args.name, {
        "width_mult": args.width, "resolution": args.resolution, "classes": args.classes, "lut": args.lut,
        "subnets": len(rows), "threads": 1,
        "rounds": args.rounds, "repeats_per_round": args.repeats, "load_average_before": load_before,
        "lut_layers": len(table.entries), "lut_build_s": build_s,
        "kendall_tau_lut_vs_measured_min": round(kendall_tau(lut, wall), 4),
        "kendall_tau_lut_vs_measured_cpu_min": round(kendall_tau(lut, cpu), 4),
        "kendall_tau_macs_vs_measured_min": round(kendall_tau([r["macs_m"] for r in rows], wall), 4),
        "median_ratio_measured_over_lut": round(float(np.median([b / a for a, b in zip(lut, wall)])), 3),
        "target": ">= 0.9", "rows": rows})


if __name__ == "__main__":
    main()
