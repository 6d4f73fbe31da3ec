"""BLEU of the trained hat_cpu SuperTransformer: extreme subnets and BLEU vs MACs of random subnets.

- the largest and the smallest SubTransformer on Multi30k test2016 and newstest2014
  (full sets unless ``--extremes-subset``; beam 4, length penalty 0.6, sacrebleu on
  detokenized output, signature recorded);
- ``--n`` random SubTransformers (fixed seed) on a fixed-seed subset of Multi30k test2016,
  with their MACs, params and proxy latency, through the ``hat_supernet`` evaluator.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_bleu.py [--n 50] [--subset 300]
        [--extremes-subset N] [--seed 0] [--beam 4] [--len-penalty 0.6]

``--beam 1`` decodes greedily; ``--n 0`` or ``--skip-extremes`` runs one half only. Writes
results/hat/bleu.json (extremes) and results/hat/bleu_vs_macs.{json,csv,png} (random
subnets). Needs a trained checkpoint (results/hat/multi30k) and ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from linas.errors import LinasError
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.transformer.arch import extreme_configs
from supernets.transformer.checkpoint import load_supernet
from supernets.transformer.data import load_corpus, multi30k, newstest2014, pairs, subset_indices
from supernets.transformer.reporting import CHECKPOINT, RESULTS, write_json
from supernets.transformer.scoring import corpus_bleu, translate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def extremes(checkpoint: str, sets: list[str], subset: int | None, seed: int, beam: int,
             len_penalty: float) -> tuple[list[dict], dict]:
    net, tokenizer, meta = load_supernet(checkpoint)
    corpora = {"multi30k_test2016": multi30k(DATA / "multi30k", "test_2016_flickr"),
               "newstest2014": newstest2014(DATA / "wmt14")}
    unknown = set(sets) - set(corpora)
    if unknown:
        raise LinasError(f"unknown test set(s) {sorted(unknown)}; known: {sorted(corpora)}")
    texts = {}
    for corpus in sets:
        src, ref = pairs(load_corpus(corpora[corpus]))
        keep = subset_indices(len(src), subset, seed)
        texts[corpus] = ([src[i] for i in keep], [ref[i] for i in keep], len(src))
    rows = []
    for name, config in zip(("largest", "smallest"), extreme_configs(net.space)):
        net.set_active_subnet(config)
        sub = net.get_active_subnet().eval()
        for corpus in sets:
            src, ref, total = texts[corpus]
            start = time.perf_counter()
            hyps = translate(sub, tokenizer, src, beam=beam, len_penalty=len_penalty, max_tokens=8192)
            bleu = corpus_bleu(hyps, ref)
            rows.append({"subnet": name, "corpus": corpus, "sentences": len(src), "of": total,
                         "subset_seed": seed if len(src) < total else None, "beam": beam,
                         "len_penalty": len_penalty, "bleu": bleu.score,
                         "signature": bleu.signature, "detail": bleu.text,
                         "macs_m": net.active.macs() / 1e6, "params_m": net.active.params() / 1e6,
                         "seconds": time.perf_counter() - start, "examples": hyps[:3], "config": config})
            print({k: rows[-1][k] for k in ("subnet", "corpus", "sentences", "bleu", "seconds")}, flush=True)
    return rows, meta


def sweep(checkpoint: str, n: int, subset: int | None, seed: int, beam: int,
          len_penalty: float) -> tuple[list[dict], str]:
    space = get_space("hat_cpu")
    evaluator = make_evaluator("hat_supernet", space, {
        "checkpoint": checkpoint, "subset": subset, "subset_seed": seed, "threads": 1, "beam": beam,
        "len_penalty": len_penalty,
        "corpus": {"src": str(DATA / "multi30k/test_2016_flickr.en.gz"),
                   "tgt": str(DATA / "multi30k/test_2016_flickr.de.gz")}})
    rows = []
    for genome in space.sample(np.random.default_rng(0), n):
        outcome = evaluator.guarded(space.to_config(genome))
        if not outcome.ok:
            raise LinasError(f"subnet {space.key(genome)}: {outcome.error}")
        rows.append({"key": space.key(genome), **outcome.metrics, "seconds": outcome.wall_time})
        print(len(rows), {k: round(v, 2) for k, v in outcome.metrics.items()}, flush=True)
    return rows, evaluator.identity


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter([r["macs"] for r in rows], [r["bleu"] for r in rows], s=14, label="random subnets")
    ax.set_xlabel("MACs (M, 30+30 tokens)")
    ax.set_ylabel("BLEU (Multi30k test2016 subset)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def subset_arg(text: str) -> int | None:
    """``--subset all`` (or 0) keeps every pair."""
    if text in ("all", "0"):
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a subset is a positive number of pairs, or 'all'")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="random subnets in the BLEU-vs-MACs sweep (0: none)")
    parser.add_argument("--subset", type=subset_arg, default=300,
                        help="fixed-seed subset of test2016 pairs for the sweep ('all': every pair)")
    parser.add_argument("--extremes-subset", type=subset_arg, default=None,
                        help="fixed-seed subset of each test set for the extreme subnets (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both subsets")
    parser.add_argument("--beam", type=int, default=4, help="beam size (1: greedy search)")
    parser.add_argument("--len-penalty", type=float, default=0.6)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--sets", nargs="+", default=["multi30k_test2016", "newstest2014"])
    parser.add_argument("--skip-extremes", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the JSON, CSV and plot go")
    args = parser.parse_args()
    if args.beam < 1:
        parser.error("--beam must be at least 1")
    torch.set_num_threads(1)
    try:
        run(args)
    except LinasError as exc:
        print(f"bench_hat_bleu: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run(args: argparse.Namespace) -> None:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_extremes:
        extreme_rows, meta = extremes(args.checkpoint, args.sets, args.extremes_subset, args.seed, args.beam,
                                      args.len_penalty)
        write_json(args.out_dir / "bleu.json", {
            "benchmark": f"BLEU of the largest and smallest SubTransformers (beam {args.beam}, "
                         f"lenpen {args.len_penalty}, sacrebleu on detokenized output)",
            "checkpoint": args.checkpoint, "checkpoint_update": meta["step"],
            "checkpoint_sha256": meta["sha256"], "extremes": extreme_rows})
    if args.n:
        rows, identity = sweep(args.checkpoint, args.n, args.subset, args.seed, args.beam, args.len_penalty)
        with open(args.out_dir / "bleu_vs_macs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tau = kendalltau([r["macs"] for r in rows], [r["bleu"] for r in rows])[0]
        meta = load_supernet(args.checkpoint)[2]
        write_json(args.out_dir / "bleu_vs_macs.json", {
            "benchmark": f"BLEU vs MACs of random SubTransformers (fixed-seed Multi30k test2016 subset, "
                         f"beam {args.beam})",
            "checkpoint": args.checkpoint, "checkpoint_update": meta["step"], "checkpoint_sha256": meta["sha256"],
            "n": len(rows), "subset": args.subset, "subset_seed": args.seed, "beam": args.beam,
            "len_penalty": args.len_penalty, "evaluator": identity,
            "kendall_tau_bleu_macs": float(tau),
            "bleu_range": [min(r["bleu"] for r in rows), max(r["bleu"] for r in rows)],
            "macs_range": [min(r["macs"] for r in rows), max(r["macs"] for r in rows)],
            "mean_seconds_per_subnet": float(np.mean([r["seconds"] for r in rows])), "subnets": rows})
        plot(rows, args.out_dir / "bleu_vs_macs.png")


if __name__ == "__main__":
    main()
