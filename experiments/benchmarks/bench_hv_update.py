"""Cost of the hypervolume update per validated evaluation.

Streams N validated points (synthetic MobileNetV3 objectives of random subnets, and a
harder case where every point improves the front) through the incremental tracker.

    python experiments/benchmarks/bench_hv_update.py [--n 10000]

Writes results/benchmarks/hv_update.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from linas.evaluator import make_evaluator
from linas.hypervolume import HypervolumeTracker, Normalizer
from linas.objectives import Objective
from linas.spaces import get_space

from _common import write_result


def stream(points: np.ndarray, objectives, bounds) -> tuple[float, float]:
    tracker = HypervolumeTracker(Normalizer(objectives, bounds))
    start = time.perf_counter()
    for p in points:
        tracker.add(p)
    return (time.perf_counter() - start) / len(points), len(tracker.front)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    space = get_space("ofa_mbv3")
    evaluator = make_evaluator("synthetic_mbv3", space, {"noise": 0.1})
    rows = [evaluator.evaluate_one(space.to_config(g)) for g in space.sample(np.random.default_rng(0), args.n)]
    objectives = list(evaluator.metrics[:2])
    synthetic = np.array([[r["top1"], r["latency"]] for r in rows])
    per_point, front = stream(synthetic, objectives, [(60, 80), (10, 160)])
    # Worst case: points on a growing concave front, each one enters it.
    t = np.linspace(0.01, 0.99, args.n)
    rng = np.random.default_rng(1)
    rng.shuffle(t)
    worst = np.column_stack([t, 1 - np.sqrt(t)])
    minimize = [Objective("f1", "min"), Objective("f2", "min")]
    worst_per_point, worst_front = stream(worst, minimize, [(0, 1), (0, 1)])
    print(f"synthetic stream: {per_point * 1e6:.1f} us per validated point (front {front:.0f} points)")
    print(f"every point non-dominated: {worst_per_point * 1e6:.1f} us per point (front {worst_front:.0f} points)")
    path = write_result("hv_update", {"n": args.n, "synthetic_us_per_point": per_point * 1e6,
                                      "synthetic_front_size": front,
                                      "all_nondominated_us_per_point": worst_per_point * 1e6,
                                      "all_nondominated_front_size": worst_front})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
