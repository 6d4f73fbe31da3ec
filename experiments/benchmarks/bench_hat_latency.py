"""Latency proxy vs measured latency of HAT SubTransformers (Kendall tau over random subnets).

Measured: HAT's protocol (batch 1, 30-token source, encoder plus 30 beam-4 decoder steps
with the key/value cache, warm-ups, trimmed mean). Proxy: the lookup table built by
``linas build-lut experiments/configs/hat_cpu_lut.yaml``. MACs are reported for context.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_latency.py [--n 50]

Writes results/hat/latency_proxy.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from supernets.transformer.latency import LatencyTable, latency_stats
from supernets.transformer.reporting import CHECKPOINT, RESULTS, supernet_or_random, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lut", default=str(RESULTS / "latency_lut_cpu.json"))
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS / "latency_proxy.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table = LatencyTable.load(args.lut)
    net, _, weights = supernet_or_random(args.checkpoint, table.meta["space"], table.meta["vocab_size"],
                                         table.meta["qkv_dim"])
    space = net.space
    rows = []
    for genome in space.sample(np.random.default_rng(args.seed), args.n):
        config = space.to_config(genome)
        net.set_active_subnet(config)
        arch = net.active
        stats = latency_stats(net.get_active_subnet(), warmup=3, repeats=args.repeats, trim=0.1)
        rows.append({"key": space.key(genome), "measured_ms": stats["trimmed_mean"], "measured_min_ms": stats["min"],
                     "proxy_ms": table.predict(arch), "macs_m": arch.macs() / 1e6, "params_m": arch.params() / 1e6})
        print(f"{len(rows):3d} measured {stats['trimmed_mean']:7.1f} ms (min {stats['min']:7.1f})  "
              f"proxy {rows[-1]['proxy_ms']:7.1f} ms", flush=True)
    measured = [r["measured_ms"] for r in rows]
    measured_min = [r["measured_min_ms"] for r in rows]
    proxy = [r["proxy_ms"] for r in rows]
    macs = [r["macs_m"] for r in rows]
    summary = {"n": len(rows),
               "kendall_tau_proxy_vs_trimmed_mean": float(kendalltau(proxy, measured)[0]),
               "kendall_tau_proxy_vs_min": float(kendalltau(proxy, measured_min)[0]),
               "spearman_proxy_vs_trimmed_mean": float(spearmanr(proxy, measured)[0]),
               "kendall_tau_macs_vs_trimmed_mean": float(kendalltau(macs, measured)[0]),
               "kendall_tau_trimmed_mean_vs_min": float(kendalltau(measured, measured_min)[0]),
               "mean_abs_rel_error_proxy_vs_min": float(np.mean(np.abs(np.subtract(proxy, measured_min))
                                                                / measured_min))}
    print(summary)
    write_json(args.out, {"benchmark": "hat latency proxy vs measured", "weights": weights, "lut": args.lut,
                          "lut_meta": table.meta, "protocol": "batch 1, 30-token source, encoder + 30 decoder "
                          "steps, beam 4, KV cache, 3 warm-ups, 10% trimmed mean (and min) of repeats",
                          "repeats": args.repeats, "summary": summary, "subnets": rows})


if __name__ == "__main__":
    main()
