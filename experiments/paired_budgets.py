"""Mean hypervolume of each strategy at several budgets, and paired Wilcoxon tests against one.

Reads the per-run CSVs that ``linas compare`` exports (``<comparison>/runs/<label>_seed<k>.csv``,
one row per evaluation with the hypervolume after it), from one or more comparison folders, so
runs compared at different times (e.g. a committed comparison and a new strategy's runs) are
paired by seed::

    python experiments/paired_budgets.py results/ofa_imagenet_note10 runs/new/comparison \\
        --budgets 100 200 500 1000 --reference linas_ensemble_population -o results/strategies/x.md

A label found in several folders must have the same runs in each (same HV curve per seed), or it
is an error: the folders would disagree about what the strategy did.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

RUN_CSV = re.compile(r"(?P<label>.+)_seed(?P<seed>\d+)\.csv$")


def hv_curves(folders: list[Path]) -> dict[str, dict[int, np.ndarray]]:
    """label -> seed -> HV after validation 1, 2, ..."""
    curves: dict[str, dict[int, np.ndarray]] = {}
    for folder in folders:
        runs = folder / "runs"
        if not runs.is_dir():
            raise SystemExit(f"paired_budgets: {folder} has no runs/ folder (run linas compare first)")
        for path in sorted(runs.glob("*_seed*.csv")):
            m = RUN_CSV.match(path.name)
            if not m or path.name.endswith("_predictors.csv"):
                continue
            table = pd.read_csv(path, usecols=["status", "hypervolume"])
            hv = table.loc[table["status"] == "ok", "hypervolume"].to_numpy(dtype=float)
            label, seed = m["label"], int(m["seed"])
            known = curves.setdefault(label, {}).get(seed)
            if known is not None and not (len(known) == len(hv) and np.allclose(known, hv)):
                raise SystemExit(f"paired_budgets: {label} seed {seed} differs between the folders ({path})")
            curves[label][seed] = hv
    return curves


def table(curves: dict[str, dict[int, np.ndarray]], budgets: list[int], reference: str) -> pd.DataFrame:
    if reference not in curves:
        raise SystemExit(f"paired_budgets: no runs of '{reference}' (found {', '.join(sorted(curves))})")
    rows = []
    for budget in budgets:
        ref = {s: hv[budget - 1] for s, hv in curves[reference].items() if len(hv) >= budget}
        for label, runs in curves.items():
            at = {s: hv[budget - 1] for s, hv in runs.items() if len(hv) >= budget}
            seeds = sorted(set(at) & set(ref))
            row = {"budget": budget, "strategy": label, "runs": len(at),
                   "hv_mean": np.mean(list(at.values())) if at else np.nan,
                   "hv_std": np.std(list(at.values()), ddof=1) if len(at) > 1 else np.nan}
            if label != reference and seeds:
                diff = np.array([ref[s] - at[s] for s in seeds])
                row.update({"paired_seeds": len(seeds), f"{reference}_minus_it": diff.mean(),
                            f"{reference}_ahead": f"{int((diff > 0).sum())}/{len(seeds)}",
                            "wilcoxon_p": float(stats.wilcoxon(diff).pvalue) if np.any(diff) else 1.0})
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="comparison folders (written by linas compare)")
    parser.add_argument("--budgets", type=int, nargs="+", required=True)
    parser.add_argument("--reference", required=True, help="the strategy every other is paired with")
    parser.add_argument("--only", nargs="+", help="these strategies only (besides the reference)")
    parser.add_argument("-o", "--output", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    if min(args.budgets) < 1:
        parser.error("--budgets must be positive numbers of validations")
    curves = hv_curves(args.folders)
    if args.only:
        curves = {k: v for k, v in curves.items() if k in set(args.only) | {args.reference}}
    result = table(curves, sorted(args.budgets), args.reference)
    text = result.to_markdown(index=False, floatfmt=".4g")
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        command = "python experiments/paired_budgets.py " + " ".join(sys.argv[1:])
        args.output.write_text(f"`{command}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
