"""Search-side cost of one LINAS outer iteration.

Predictor fitting (one model per objective) plus the inner NSGA-II's 20,000 predicted
evaluations, with 500 validated networks over the 45-variable MobileNetV3 space
(synthetic objectives). Target: at most 2 s on 2 cores.

    python experiments/benchmarks/bench_linas_overhead.py [--repeats 5]

Writes results/benchmarks/linas_overhead.json.
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
from linas.strategies import make_strategy

from _common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--validated", type=int, default=500)
    args = parser.parse_args()

    space = get_space("ofa_mbv3")
    evaluator = make_evaluator("synthetic_mbv3", space, {"noise": 0.1})
    genomes = space.sample_unique(np.random.default_rng(0), args.validated)
    F = to_minimization(evaluator.metrics[:2], [evaluator.evaluate_one(space.to_config(g)) for g in genomes])

    rows = []
    for predictor in ("auto", "ridge", "svr", "gbm"):
        for inner_population in (50, 100):
            totals, fits = [], []
            for r in range(args.repeats):
                strategy = make_strategy("linas", Problem.simple(space, 2), r, {"predictor": predictor,
                                                                "inner_population": inner_population})
                strategy.tell(genomes, F)
                start = time.perf_counter()
                strategy.ask()
                totals.append(time.perf_counter() - start)
                fits.append(sum(d["fit_seconds"] for d in strategy.diagnostics if "fit_seconds" in d))
            row = {"predictor": predictor, "inner_population": inner_population, "inner_evaluations": 20000,
                   "validated": args.validated, "iteration_s_median": statistics.median(totals),
                   "iteration_s_min": min(totals), "fit_s_median": statistics.median(fits),
                   "repeats": args.repeats}
            rows.append(row)
            print(f"{predictor:>6} inner pop {inner_population:>3}: iteration {row['iteration_s_median']:.2f} s "
                  f"(min {row['iteration_s_min']:.2f}), of which predictor fits {row['fit_s_median']:.2f} s")
    path = write_result("linas_overhead", {"target_s": 2.0, "rows": rows})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
