"""Cost of persisting each evaluation: a run of cheap validations, timed end to end.

Random search on the synthetic MobileNetV3 benchmark (no delay, no cache): nearly all of
the time is the archive's synchronous commits. ``--baseline SRC`` also times the linas
package found in SRC (e.g. an export of an older commit, ``git archive HEAD | tar -x -C
/tmp/head``), in alternation with this one, each in a fresh process.

    python experiments/benchmarks/bench_archive_commit.py [--n 3000] [--repeats 3] [--baseline /tmp/head]

Writes results/benchmarks/archive_commit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import write_result

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: One timed run, in a child process importing linas from the first path of PYTHONPATH.
CHILD = """
import json, sys, tempfile, time
import linas
from linas.evaluator import make_evaluator
from linas.runner import run_search
from linas.spaces import get_space
from linas.strategies import make_strategy
from linas.testing import run_spec
n = int(sys.argv[1])
space = get_space("ofa_mbv3")
evaluator = make_evaluator("synthetic_mbv3", space, {"noise": 0.1})
spec = run_spec("random", 0, n, evaluator.metrics[:2], [(60, 80), (10, 160)], {"population": 100}, space=space)
strategy = make_strategy("random", spec.problem(space), 0, {"population": 100})
with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    result = run_search(tmp + "/run", spec, space, evaluator, strategy, progress=False)
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "validated": result.n_validated, "linas": linas.__file__}))
"""


def timed(source: Path, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="validations per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a source tree holding the linas package to compare with")
    args = parser.parse_args()
    sources = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list[float]] = {k: [] for k in sources}
    for _ in range(args.repeats):
        for label, source in sources.items():
            r = timed(source, args.n)
            assert r["validated"] == args.n and r["linas"].startswith(str(source)), r
            runs[label].append(r["seconds"])
            print(f"{label}: {r['seconds']:.2f} s for {args.n} validations", flush=True)
    summary = {label: {"seconds": s, "median_s": statistics.median(s),
                       "ms_per_validation": 1000 * statistics.median(s) / args.n} for label, s in runs.items()}
    path = write_result("archive_commit", {"validations": args.n, "repeats": args.repeats,
                                           "baseline": str(args.baseline) if args.baseline else None, **summary})
    print(json.dumps(summary, indent=2), f"\n-> {path}")


if __name__ == "__main__":
    main()
