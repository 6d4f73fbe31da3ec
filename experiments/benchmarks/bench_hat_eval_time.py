"""Wall time of one hat_supernet evaluation (BLEU on a subset, latency proxy, MACs, params).

Loads the evaluator once (supernet, tokenizer, data), then evaluates random SubTransformers
and reports the per-subnet wall time, for the BLEU evaluator (beam 4 and greedy) and the
validation-loss evaluator.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_eval_time.py [--n 5] [--subset 300]

Writes results/hat/eval_time.json. Needs a trained checkpoint and ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from linas.errors import LinasError
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.transformer.reporting import CHECKPOINT, RESULTS, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--subset", type=int, default=300)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--out", default=str(RESULTS / "eval_time.json"))
    args = parser.parse_args()
    try:
        run(args)
    except LinasError as exc:
        print(f"bench_hat_eval_time: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run(args: argparse.Namespace) -> None:
    space = get_space("hat_cpu")
    configs = [space.to_config(g) for g in space.sample(np.random.default_rng(0), args.n)]
    rows = []
    for name, beam in (("hat_supernet", 4), ("hat_supernet", 1), ("hat_supernet_loss", 4)):
        start = time.perf_counter()
        evaluator = make_evaluator(name, space, {"checkpoint": args.checkpoint, "subset": args.subset,
                                                 "beam": beam, "threads": 1})
        load = time.perf_counter() - start
        times = []
        for config in configs:
            outcome = evaluator.guarded(config)
            if not outcome.ok:
                raise LinasError(f"{name}: {outcome.error}")
            times.append(outcome.wall_time)
        rows.append({"evaluator": name, "beam": beam if name == "hat_supernet" else None, "subset": args.subset,
                     "load_s": load, "per_subnet_s": times, "mean_s": float(np.mean(times)),
                     "checkpoint_update": evaluator.meta["step"], "identity": evaluator.identity})
        print(rows[-1], flush=True)
    write_json(args.out, {"benchmark": "per-subnet evaluation wall time (load_s: evaluator set-up, once)",
                          "checkpoint": args.checkpoint,
                          "corpus": "Multi30k val (evaluator default), fixed-seed subset", "n": args.n,
                          "results": rows})


if __name__ == "__main__":
    main()
