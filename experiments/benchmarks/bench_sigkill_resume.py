"""Kill searches with SIGKILL at random moments, resume them, and compare with uninterrupted runs.

For each of ``--runs`` trials (strategy and seed cycling over ``--strategies``), a small
synthetic experiment is searched once uninterrupted and once killed 1-3 times at random
points (each kill after a random number of new archive rows) and resumed until it
finishes. The trial passes when both archives hold the same networks, in the same order,
with the same metrics and hypervolumes, and no network was validated twice.
Writes results/benchmarks/sigkill_resume.json.

    python experiments/benchmarks/bench_sigkill_resume.py --runs 20
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from helpers import archived_rows, search_process  # noqa: E402

from _common import write_result  # noqa: E402
from linas.archive import RunArchive  # noqa: E402

QUICK = {"linas": {"population": 20, "inner_evaluations": 2000}, "nsga2": {"population": 20},
         "random": {"population": 20}}


def config(tmp: Path, strategy: str, seed: int, budget: int) -> Path:
    data = {"name": "sigkill", "space": {"name": "ofa_mbv3"},
            "evaluator": {"name": "synthetic_mbv3", "options": {"noise": 0.1, "delay": 0.02}},
            "objectives": [{"name": "top1", "bounds": [60, 80]}, {"name": "latency", "bounds": [10, 160]}],
            "strategies": [{"name": strategy, "options": QUICK.get(strategy, {"population": 20})}],
            "seeds": [seed], "budget": budget, "output": str(tmp / "unused")}
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def contents(run_dir: Path) -> list[tuple]:
    with RunArchive.open_existing(run_dir) as archive:
        return [(r.key, r.status, r.metrics, r.n_validated, r.hypervolume) for r in archive.records()]


def trial(tmp: Path, strategy: str, seed: int, budget: int, rng: np.random.Generator) -> dict:
    path = config(tmp, strategy, seed, budget)
    straight = search_process(path, tmp / "straight")
    straight.communicate(timeout=1800)
    target = tmp / "killed" / strategy / f"seed{seed}"
    kills = int(rng.integers(1, 4))
    killed_at = []
    for _ in range(kills):
        proc = search_process(path, tmp / "killed")
        stop_at = archived_rows(target) + int(rng.integers(5, budget // (kills + 1)))
        while archived_rows(target) < stop_at and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at.append(archived_rows(target))
    final = search_process(path, tmp / "killed")
    _, err = final.communicate(timeout=1800)
    a, b = contents(target), contents(tmp / "straight" / strategy / f"seed{seed}")
    keys = [row[0] for row in a]
    return {"strategy": strategy, "seed": seed, "killed_at_rows": killed_at, "rows": len(a),
            "identical": a == b, "duplicates": len(keys) - len(set(keys)), "resume_rc": final.returncode,
            "error": err.strip().splitlines()[-1] if final.returncode else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--strategies", nargs="+", default=["linas", "nsga2", "random"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.runs):
        strategy = args.strategies[i % len(args.strategies)]
        with tempfile.TemporaryDirectory() as tmp:
            row = trial(Path(tmp), strategy, seed=i, budget=args.budget, rng=rng)
        rows.append(row)
        print(f"{i + 1:>2}/{args.runs} {strategy:>8} seed {i}: killed at rows {row['killed_at_rows']}, "
              f"{'identical' if row['identical'] else 'DIFFERENT'}, {row['duplicates']} duplicates", flush=True)
    identical = sum(r["identical"] and not r["duplicates"] and r["resume_rc"] == 0 for r in rows)
    path = write_result("sigkill_resume", {"runs": args.runs, "identical": identical, "budget": args.budget,
                                           "kill_seed": args.seed, "trials": rows})
    print(f"{identical}/{args.runs} identical to uninterrupted runs -> {path}")


if __name__ == "__main__":
    main()
