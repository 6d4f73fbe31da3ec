"""After how many validations a strategy passes another's best network under a constraint.

For each paired seed: the best objective value that the reference run (default ``linas``)
found among its networks inside the constraint, and the first validation at which the
other run (default ``ofa_evolution``) validated a network inside the constraint with a
better value. Reads the run archives of a constrained experiment (read-only)::

    python experiments/constrained_passes.py runs/ofa_imagenet_note10_latency20 --max latency=20
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from linas.archive import RunArchive


def best_inside(run_dir: Path, objective: str, limits: dict[str, float]) -> list[tuple[int, float]]:
    """(validation number, value) of every successful network inside the limits, in order."""
    with RunArchive.open_existing(run_dir) as archive:
        return [(r.n_validated, r.metrics[objective]) for r in archive.records()
                if r.ok and all(r.metrics[m] <= v for m, v in limits.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, help="folder holding <strategy>/seed<k>/ run directories")
    parser.add_argument("--max", action="append", required=True, metavar="METRIC=VALUE",
                        help="an upper limit of the constraint (repeatable)")
    parser.add_argument("--objective", default="top1", help="the objective to maximize (default top1)")
    parser.add_argument("--reference", default="linas")
    parser.add_argument("--other", default="ofa_evolution")
    args = parser.parse_args()
    try:
        limits = {m: float(v) for m, v in (item.split("=", 1) for item in args.max)}
    except ValueError:
        parser.error("--max takes METRIC=VALUE, e.g. latency=20")
    passes = []
    for ref_dir in sorted((args.experiment / args.reference).glob("seed*"), key=lambda p: int(p.name[4:])):
        ref = best_inside(ref_dir, args.objective, limits)
        other_dir = args.experiment / args.other / ref_dir.name
        if not ref or not other_dir.is_dir():
            continue
        target = max(v for _, v in ref)
        at = next((n for n, v in best_inside(other_dir, args.objective, limits) if v > target), None)
        passes.append(at)
        print(f"{ref_dir.name}: {args.reference} best {target:.4f}; {args.other} passes it at validation "
              f"{at if at is not None else 'never'}")
    reached = [p for p in passes if p is not None]
    if reached:
        print(f"median over the {len(reached)} of {len(passes)} seeds where it passes: {statistics.median(reached):g}")


if __name__ == "__main__":
    main()
