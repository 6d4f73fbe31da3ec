"""OFA's evolution finder on ``ofa_imagenet``: per-evaluation commits vs vectorized chunks.

One run of ``ofa_evolution`` (population 100, seed 0, latency <= 20 ms on the Note10 tables,
objectives and bounds of ``experiments/configs/ofa_imagenet_note10_latency20.yaml``) with
``--n`` validations, timed end to end in a fresh process per path:

- ``per_evaluation``: the evaluator with ``vectorized`` off, so the runner stores each
  evaluation in its own synchronous commit (the path every evaluator took before);
- ``vectorized``: ``evaluate_batch`` per chunk, the chunk stored in one transaction.

Both archives must hold the same records (key, status, metrics, validations, hypervolume);
the script fails otherwise.

    python experiments/benchmarks/bench_vectorized_eval.py [--n 50000]

Writes results/benchmarks/vectorized_eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _common import write_result

#: One timed run, in a child process; prints seconds and a digest of the archive's records.
CHILD = """
import hashlib, json, sys, tempfile, time
from linas.archive import RunArchive
from linas.evaluator import evaluators
from linas.objectives import Constraint
from linas.runner import run_search
from linas.spaces import get_space
from linas.strategies import make_strategy
from linas.testing import run_spec
n, vectorized = int(sys.argv[1]), sys.argv[2] == "vectorized"
space = get_space("ofa_imagenet")
evaluator = evaluators.get("ofa_imagenet")(space)
evaluator.vectorized = vectorized
options = {"population": 100, "parent_ratio": 0.25, "mutation_probability": 0.1}
spec = run_spec("ofa_evolution", 0, n, evaluator.metrics[:2], [(75.0, 84.0), (9.0, 95.0)], options,
                constraints=[Constraint("latency", max=20.0)], space=space, evaluator="ofa_imagenet")
strategy = make_strategy("ofa_evolution", spec.problem(space), 0, options)
with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    result = run_search(tmp + "/run", spec, space, evaluator, strategy, progress=False)
    seconds = time.perf_counter() - start
    with RunArchive.open_existing(tmp + "/run") as archive:
        rows = [(r.key, r.status, r.metrics, r.n_validated, r.hypervolume) for r in archive.records()]
        best = max(r.metrics["top1"] for r in archive.records() if r.ok and r.metrics["latency"] <= 20.0)
digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
print(json.dumps({"seconds": seconds, "validated": result.n_validated, "hypervolume": result.hypervolume,
                  "best_top1_under_20ms": best, "records_sha256": digest}))
"""


def timed(n: int, mode: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), mode], env=env, capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50000, help="validations per run")
    args = parser.parse_args()
    runs = {}
    for mode in ("per_evaluation", "vectorized"):
        runs[mode] = timed(args.n, mode)
        runs[mode]["ms_per_validation"] = 1000 * runs[mode]["seconds"] / args.n
        print(f"{mode}: {runs[mode]['seconds']:.1f} s ({runs[mode]['ms_per_validation']:.3f} ms/validation)",
              flush=True)
    same = runs["per_evaluation"]["records_sha256"] == runs["vectorized"]["records_sha256"]
    speedup = runs["per_evaluation"]["seconds"] / runs["vectorized"]["seconds"]
    path = write_result("vectorized_eval", {"validations": args.n, **runs, "identical_archives": same,
                                            "speedup": speedup})
    print(f"speed-up {speedup:.1f}x, identical archives: {same} -> {path}")
    if not same:
        sys.exit("the two paths archived different records")


if __name__ == "__main__":
    main()
