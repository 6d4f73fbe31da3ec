"""Search-side cost of one MOBO step (one ask) at 500 and 1,000 observations.

GP fits (one per objective), the inner NSGA-II on the GP means (candidates) and the
greedy batch of 50 by Monte Carlo EHVI with pending points, over the 45-variable
MobileNetV3 space with synthetic objectives (normalized by the synthetic config's bounds).

    python experiments/benchmarks/bench_mobo_overhead.py [--repeats 1] [--observations 500 1000]
    python experiments/benchmarks/bench_mobo_overhead.py --backend botorch    # pip install 'linas[bo]'

Writes results/benchmarks/mobo_overhead.json (mobo_overhead_botorch.json for BoTorch).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from linas.evaluator import make_evaluator
from linas.objectives import to_minimization
from linas.spaces import get_space
from linas.spec import Problem
from linas.strategies import make_strategy, strategies

from _common import write_result

BOUNDS = [(60.0, 80.0), (10.0, 160.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--observations", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--backend", choices=["sklearn", "botorch"], default="sklearn")
    args = parser.parse_args()

    space = get_space("ofa_mbv3")
    evaluator = make_evaluator("synthetic_mbv3", space, {"noise": 0.1})
    objectives = tuple(o.with_bounds(b) for o, b in zip(evaluator.metrics[:2], BOUNDS))
    problem = Problem(space, objectives, (1.0, 1.0))
    rows = []
    name = "mobo_overhead" if args.backend == "sklearn" else f"mobo_overhead_{args.backend}"

    def write(rows):
        return write_result(name, {"backend": args.backend, "rows": rows,
                                   "note": "2 CPU cores shared with other long jobs (searches, trainings); see load_average_1m"})

    for n in args.observations:
        genomes = space.sample_unique(np.random.default_rng(n), n)
        F = to_minimization(objectives, [evaluator.evaluate_one(space.to_config(g)) for g in genomes])
        totals, parts = [], []
        for r in range(args.repeats):
            strategy = make_strategy("mobo", problem, r, {"population": 50, "backend": args.backend})
            strategy.tell(genomes[:50], F[:50])  # the shared initial population, then the rest
            strategy.tell(genomes[50:], F[50:])
            start = time.perf_counter()
            batch = strategy.ask()
            totals.append(time.perf_counter() - start)
            parts.append(strategy.timings)
            assert len(batch) == 50
        row = {"observations": n, "population": 50, "step_s_median": statistics.median(totals),
               "step_s_min": min(totals), "repeats": args.repeats,
               "fit_s": statistics.median(p["fit"] for p in parts),
               "candidates_s": statistics.median(p["candidates"] for p in parts),
               "acquisition_s": statistics.median(p["acquisition"] for p in parts),
               "n_candidates": parts[0]["n_candidates"],
               "options": strategies.options("mobo", {"population": 50, "backend": args.backend}, n_args=2)}
        rows.append(row)
        write(rows)  # after each row: a slow backend may not finish the next
        print(f"{n:>5} observations: step {row['step_s_median']:.1f} s (GP fits {row['fit_s']:.1f} s, "
              f"candidates {row['candidates_s']:.1f} s, acquisition {row['acquisition_s']:.1f} s "
              f"over {row['n_candidates']} candidates)", flush=True)
    print(f"-> {write(rows)}")


if __name__ == "__main__":
    main()
