"""Does a search objective rank SubTransformers as test BLEU does?

Experiment (d) scores subnets by validation loss on a fixed subset of Multi30k val because
beam-search BLEU costs 10-30x more per subnet. This benchmark takes the random SubTransformers
that ``bench_hat_bleu.py`` decoded on Multi30k test2016 (its ``bleu_vs_macs.csv``), evaluates
each with the evaluator of an experiment config (by default (d)'s ``hat_supernet_loss``), and
reports Kendall tau and Spearman rho between that objective and test BLEU, next to MACs and
params as baselines.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_loss_vs_bleu.py \
        --sweep results/hat/multi30k_sandwich/eval_update5202/bleu_vs_macs.csv \
        [--config experiments/configs/multi30k_hat_sandwich.yaml] [--metric valid_loss]

Writes ``loss_vs_bleu.json`` next to the sweep CSV (or to ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from linas.errors import LinasError
from linas.evaluate_network import load_space_and_evaluator
from supernets.transformer.reporting import write_json

CONFIG = Path("experiments/configs/multi30k_hat_sandwich.yaml")


def read_sweep(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise LinasError(f"{path}: no such sweep CSV; run bench_hat_bleu.py with --n first")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"key", "bleu", "macs", "params"} - set(rows[0] if rows else ())
    if not rows or missing:
        raise LinasError(f"{path}: not a bench_hat_bleu.py sweep (needs columns key, bleu, macs, params)")
    return rows


def correlations(x: list[float], bleu: list[float]) -> dict[str, float]:
    return {"kendall_tau": float(kendalltau(x, bleu)[0]), "spearman_rho": float(spearmanr(x, bleu)[0])}


def run(args: argparse.Namespace) -> dict:
    rows = read_sweep(args.sweep)
    config, space, evaluator = load_space_and_evaluator(args.config)
    try:
        if args.metric not in {m.name for m in evaluator.metrics}:
            raise LinasError(f"{args.config}: its evaluator has no metric {args.metric!r}")
        values = []
        for i, row in enumerate(rows):
            outcome = evaluator.guarded(space.to_config(space.from_key(row["key"])), config.timeout)
            if not outcome.ok:
                raise LinasError(f"subnet {row['key']}: {outcome.error}")
            values.append(float(outcome.metrics[args.metric]))
            print(i + 1, round(values[-1], 4), row["bleu"], flush=True)
        identity = evaluator.identity
    finally:
        evaluator.close()
    bleu = [float(r["bleu"]) for r in rows]
    report = {
        "benchmark": f"how {args.metric} of {args.config} ranks Multi30k test2016 BLEU over the random "
                     f"SubTransformers of {args.sweep}",
        "config": str(args.config), "evaluator": identity, "metric": args.metric, "n": len(rows),
        "correlation_with_bleu": {args.metric: correlations(values, bleu),
                                  "macs": correlations([float(r["macs"]) for r in rows], bleu),
                                  "params": correlations([float(r["params"]) for r in rows], bleu)},
        "subnets": [{"key": r["key"], "bleu": float(r["bleu"]), args.metric: v} for r, v in zip(rows, values)],
    }
    out = args.out or args.sweep.parent / "loss_vs_bleu.json"
    write_json(out, report)
    print(report["correlation_with_bleu"])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, required=True, help="bleu_vs_macs.csv of bench_hat_bleu.py")
    parser.add_argument("--config", type=Path, default=CONFIG, help="experiment config whose evaluator to use")
    parser.add_argument("--metric", default="valid_loss", help="the evaluator's metric to rank by")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: next to the sweep)")
    args = parser.parse_args()
    try:
        run(args)
    except LinasError as exc:
        print(f"bench_hat_loss_vs_bleu: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
