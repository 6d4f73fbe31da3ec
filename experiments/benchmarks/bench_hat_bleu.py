"""BLEU of a trained hat_cpu SuperTransformer: everything issue 11 item 2 asks for.

- the largest and the smallest SubTransformer on Multi30k test2016 and newstest2014
  (full sets unless ``--extremes-subset``; beam 4, length penalty 0.6, sacrebleu corpus
  BLEU on detokenized output, signature recorded);
- ``--n`` random SubTransformers (fixed seed) on Multi30k test2016 (all 1,000 pairs unless
  ``--subset``), with their MACs, params and proxy latency, through the ``hat_supernet``
  evaluator; Kendall tau(BLEU, MACs);
- how much the source matters: validation NLL/token of the largest and the smallest on
  Multi30k val with the true source and with another sentence's source;
- ``targets.json``: each number next to issue 11's target (largest >= 32, smallest >= 24,
  every random one >= 22, tau >= 0.4, shuffled-source loss of the largest >= 1.5 nats above
  the true one) and whether it is met.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_bleu.py \
        [--checkpoint results/hat/multi30k_sandwich] [--n 50] [--subset all] [--limit N]

``--limit N`` is a quick check (N pairs of every set, at most N random subnets); its
numbers are not the issue's. ``--beam 1`` decodes greedily; ``--n 0`` or
``--skip-extremes`` runs one part only. Writes bleu.json (extremes), bleu_vs_macs.{json,csv,png}
(random subnets), source.json and targets.json into ``--out-dir`` (default:
``CHECKPOINT/eval``, under results/hat/). Needs a trained checkpoint and ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
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
from supernets.transformer.reporting import RESULTS, write_json
from supernets.transformer.scoring import corpus_bleu, make_batches, translate, validation_loss
from supernets.transformer.trainer import shuffled_sources

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHECKPOINT = RESULTS / "multi30k_sandwich"
# Issue 11, item 2.
TARGETS = {"largest_bleu": 32.0, "smallest_bleu": 24.0, "random_bleu_min": 22.0, "kendall_tau": 0.4,
           "largest_shuffled_source_gap": 1.5}


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


def source_dependence(checkpoint: str, limit: int | None, seed: int) -> dict:
    """Validation NLL/token of the largest and smallest with the true and a shuffled source (Multi30k val)."""
    net, tokenizer, _ = load_supernet(checkpoint)
    src, ref = pairs(load_corpus(multi30k(DATA / "multi30k", "val")))
    if limit:
        src, ref = src[:limit], ref[:limit]
    true = make_batches(tokenizer, src, ref, 4096)
    shuffled = make_batches(tokenizer, shuffled_sources(src, seed), ref, 4096)
    out: dict = {"corpus": "multi30k_val", "sentences": len(src)}
    for name, config in zip(("largest", "smallest"), extreme_configs(net.space)):
        net.set_active_subnet(config)
        a, b = validation_loss(net, true), validation_loss(net, shuffled)
        out[name] = {"true_source": a, "shuffled_source": b, "gap": b - a}
        print(name, out[name], flush=True)
    return out


def target_report(extreme_rows: list[dict] | None, sweep_rows: list[dict] | None, tau: float | None,
                  source: dict | None) -> dict:
    """Every measured number of issue 11 item 2 next to its target."""
    checks: dict = {}

    def check(name: str, value: float | None, target: float) -> None:
        checks[name] = {"value": value, "target": target, "met": None if value is None else value >= target}

    bleu = {(r["subnet"], r["corpus"]): r["bleu"] for r in extreme_rows or []}
    check("largest_bleu", bleu.get(("largest", "multi30k_test2016")), TARGETS["largest_bleu"])
    check("smallest_bleu", bleu.get(("smallest", "multi30k_test2016")), TARGETS["smallest_bleu"])
    check("random_bleu_min", min(r["bleu"] for r in sweep_rows) if sweep_rows else None,
          TARGETS["random_bleu_min"])
    check("kendall_tau", tau, TARGETS["kendall_tau"])
    check("largest_shuffled_source_gap", source["largest"]["gap"] if source else None,
          TARGETS["largest_shuffled_source_gap"])
    report = {"targets": checks,
              "smallest_shuffled_source_gap": source["smallest"]["gap"] if source else None,
              "newstest2014_bleu": {k[0]: v for k, v in bleu.items() if k[1] == "newstest2014"},
              "all_met": all(c["met"] for c in checks.values())}
    return report


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
    parser.add_argument("--subset", type=subset_arg, default=None,
                        help="fixed-seed subset of test2016 pairs for the sweep (default 'all': every pair)")
    parser.add_argument("--extremes-subset", type=subset_arg, default=None,
                        help="fixed-seed subset of each test set for the extreme subnets (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both subsets")
    parser.add_argument("--beam", type=int, default=4, help="beam size (1: greedy search)")
    parser.add_argument("--len-penalty", type=float, default=0.6)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--sets", nargs="+", default=["multi30k_test2016", "newstest2014"])
    parser.add_argument("--skip-extremes", action="store_true")
    parser.add_argument("--skip-source", action="store_true", help="skip the shuffled-source validation loss")
    parser.add_argument("--limit", type=int, default=None,
                        help="quick check: N pairs of every set and at most N random subnets (not the issue's numbers)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the JSON, CSV and plot go (default: CHECKPOINT/eval)")
    args = parser.parse_args()
    if args.beam < 1:
        parser.error("--beam must be at least 1")
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        args.subset = args.extremes_subset = args.limit
        args.n = min(args.n, args.limit)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.out_dir is None:
        args.out_dir = Path(args.checkpoint) / "eval"
    torch.set_num_threads(args.threads)
    try:
        run(args)
    except LinasError as exc:
        print(f"bench_hat_bleu: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run(args: argparse.Namespace) -> None:
    meta = load_supernet(args.checkpoint)[2]  # fails early, in one line, without a checkpoint
    args.out_dir.mkdir(parents=True, exist_ok=True)
    common = {"checkpoint": args.checkpoint, "checkpoint_update": meta["step"],
              "checkpoint_sha256": meta["sha256"], "limit": args.limit}
    extreme_rows = sweep_rows = tau = source = None
    if not args.skip_extremes:
        extreme_rows, _ = extremes(args.checkpoint, args.sets, args.extremes_subset, args.seed, args.beam,
                                   args.len_penalty)
        write_json(args.out_dir / "bleu.json", {
            "benchmark": f"BLEU of the largest and smallest SubTransformers (beam {args.beam}, "
                         f"lenpen {args.len_penalty}, sacrebleu on detokenized output)",
            **common, "extremes": extreme_rows})
    if not args.skip_source:
        source = source_dependence(args.checkpoint, args.limit, args.seed)
        write_json(args.out_dir / "source.json", {
            "benchmark": "validation NLL/token with the true and a shuffled (another sentence's) source",
            **common, **source})
    if args.n:
        rows, identity = sweep(args.checkpoint, args.n, args.subset, args.seed, args.beam, args.len_penalty)
        sweep_rows = rows
        with open(args.out_dir / "bleu_vs_macs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tau = float(kendalltau([r["macs"] for r in rows], [r["bleu"] for r in rows])[0]) if len(rows) > 1 else None
        write_json(args.out_dir / "bleu_vs_macs.json", {
            "benchmark": f"BLEU vs MACs of random SubTransformers (Multi30k test2016, "
                         f"{'all pairs' if args.subset is None else f'{args.subset} pairs'}, beam {args.beam})",
            **common, "n": len(rows), "subset": args.subset, "subset_seed": args.seed, "beam": args.beam,
            "len_penalty": args.len_penalty, "evaluator": identity,
            "kendall_tau_bleu_macs": tau,
            "bleu_range": [min(r["bleu"] for r in rows), max(r["bleu"] for r in rows)],
            "macs_range": [min(r["macs"] for r in rows), max(r["macs"] for r in rows)],
            "mean_seconds_per_subnet": float(np.mean([r["seconds"] for r in rows])), "subnets": rows})
        plot(rows, args.out_dir / "bleu_vs_macs.png")
    report = target_report(extreme_rows, sweep_rows, tau, source)
    write_json(args.out_dir / "targets.json", {
        "benchmark": "issue 11 item 2: measured numbers next to their targets"
                     + (f" (QUICK CHECK on {args.limit} pairs: not the issue's numbers)" if args.limit else ""),
        **common, "beam": args.beam, "len_penalty": args.len_penalty, **report})
    print(json.dumps(report["targets"], indent=1))


if __name__ == "__main__":
    main()
