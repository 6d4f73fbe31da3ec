"""How well zero-cost proxies rank subnets of our supernets (issue 16, item 2).

For each entry, ``--n`` networks (fixed ``--seed``) are drawn from networks with REAL
measurements, their zero-cost proxies are computed on the same supernet checkpoint with the
``zc_mbv3`` / ``zc_hat`` proxy code, and Kendall tau of each proxy with the measured quality
is reported next to MACs and params as baselines:

- ``mbv3``: the 100 random subnets of the fidelity benchmark (results/mbv3/fidelity_tiny_imagenet.json:
  top-1 (%) on all 10,000 Tiny-ImageNet val images of the 64x64 results/mbv3/tiny_imagenet_v2
  supernet; bench_mbv3_fidelity.py);
- ``hat``: networks of experiment (d)'s evaluation cache (results/multi30k_hat_sandwich/search/
  cache.sqlite, opened read-only: validation loss in nats/token on 300 Multi30k val pairs of the
  results/hat/multi30k_sandwich SuperTransformer; multi30k_hat_sandwich.yaml);
- ``hat_bleu``: the 50 random SubTransformers of the BLEU benchmark (results/hat/multi30k_sandwich/
  eval_update7000/bleu_vs_macs.json: sacrebleu BLEU on all 1,000 test2016 pairs; bench_hat_bleu.py).

The checkpoint is checked against the source (the cache's evaluator identity names its digest;
the fidelity JSON its path). Tau is reported against *quality*, oriented so that a positive tau
means the proxy agrees with the measurement (validation loss negated), with a 95% bootstrap
interval and Spearman rho next to it. Proxy costs are the median seconds per subnet on this
machine (shared CPU, one thread). ``--tables`` recomputes the tables of an existing output.
Entries of earlier supernets are kept under ``previous`` in the output.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_zero_cost.py [--n 100] [--seed 0] \
        [--only mbv3|hat|hat_bleu] [--out results/strategies/zero_cost.json]

Needs the Tiny-ImageNet images (~/.cache/linas/data/tiny-imagenet-200) and ../shared/data/multi30k.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from linas.config import load_experiment  # noqa: E402
from linas.evaluator import make_evaluator  # noqa: E402
from linas.spaces import get_space  # noqa: E402

SUPERNETS = {
    "mbv3": {"config": "experiments/configs/tiny_imagenet_mbv3_v2.yaml", "evaluator": "zc_mbv3",
             "measured": "top1", "sign": 1.0, "source": "results/mbv3/fidelity_tiny_imagenet.json"},
    "hat": {"config": "experiments/configs/multi30k_hat_sandwich.yaml", "evaluator": "zc_hat",
            "measured": "valid_loss", "sign": -1.0, "source": "cache"},
    "hat_bleu": {"config": "experiments/configs/multi30k_hat_sandwich.yaml", "evaluator": "zc_hat",
                 "measured": "bleu", "sign": 1.0,
                 "source": "results/hat/multi30k_sandwich/eval_update7000/bleu_vs_macs.json"},
}
BASELINES = ("macs", "params")


def cached_rows(path: Path) -> tuple[str, list[tuple[str, dict]]]:
    """``(evaluator identity, [(config key, metrics)])`` of the one evaluator of a cache, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        identities = [r[0] for r in conn.execute("SELECT DISTINCT evaluator FROM cache")]
        if len(identities) != 1:
            raise SystemExit(f"{path}: expected one evaluator identity, found {len(identities)}")
        rows = conn.execute("SELECT config_key, metrics FROM cache WHERE evaluator = ? ORDER BY config_key",
                            (identities[0],)).fetchall()
    finally:
        conn.close()
    return identities[0], [(k, json.loads(m)) for k, m in rows]


def source_rows(spec: dict, config) -> tuple[str, str, list[tuple[str, dict]]]:
    """``(source path, what identifies the measured checkpoint, [(config key, metrics)])``."""
    if spec["source"] == "cache":
        identity, rows = cached_rows(ROOT / config.cache)
        return str(config.cache), identity, rows
    data = json.loads((ROOT / spec["source"]).read_text())
    if "subnets" in data:  # bench_hat_bleu.py --sweep: the evaluator identity names the digest
        return spec["source"], data["evaluator"], [(r["key"], r) for r in data["subnets"]]
    return spec["source"], f"checkpoint={data['checkpoint']}", [(r["key"], r) for r in data["rows"]]


def check_checkpoint(name: str, evaluator, options: dict, identity: str) -> None:
    """Stop unless the proxies are computed on the checkpoint the measurements came from."""
    if identity.startswith("checkpoint="):
        measured = identity.split("=", 1)[1]
        if Path(measured) != Path(options["checkpoint"]):
            raise SystemExit(f"{name}: measurements of {measured}, proxies of {options['checkpoint']}")
        return
    digest = checkpoint_digest(name, evaluator)
    if f"ckpt={digest}" not in identity:
        raise SystemExit(f"{name}: the checkpoint (digest {digest}) is not the cache's ({identity})")


def zc_options(name: str, config) -> dict:
    o = config.evaluator.options
    if name == "mbv3":
        return {"checkpoint": o["checkpoint"], "data": {**o["data"], "stream": True},
                "resolution": o["resolution"], "batch": 64, "batch_seed": 0, "threads": 1}
    return {"checkpoint": o["checkpoint"], "batch": 64, "batch_seed": 0, "threads": 1}


def checkpoint_digest(name: str, evaluator) -> str:
    return evaluator._checkpoint_digest if name == "mbv3" else evaluator.meta["sha256"]


def proxies_of(name: str, evaluator, config: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Proxy scores and seconds per proxy (extraction counted in ``extract``)."""
    start = time.perf_counter()
    if name == "mbv3":
        from supernets.mobilenetv3.arch import subnet_config
        from supernets.mobilenetv3.zero_cost import mbv3_proxies

        c = subnet_config(config)
        r = int(c.get("resolution", evaluator.options.resolution))
        evaluator.supernet.set_active_subnet(c)
        subnet = evaluator.supernet.get_active_subnet()
        x, y = evaluator.minibatch(r)
        extract = time.perf_counter() - start
        scores, times = mbv3_proxies(subnet, x, y)
    else:
        from supernets.transformer.zero_cost import hat_proxies

        evaluator.net.set_active_subnet(config)
        model = evaluator.net.get_active_subnet()
        extract = time.perf_counter() - start
        scores, times = hat_proxies(model, evaluator.batch)
    times["extract"] = extract
    return scores, times


def tau(x: list[float], y: list[float], resamples: int = 1000) -> dict[str, float | list[float]]:
    """Kendall tau (tau-b) with its p-value and a 95% bootstrap interval (networks resampled,
    fixed seed), and Spearman rho (the literature's NAS-Bench-201 tables report rho)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    t, p = kendalltau(x, y)
    rho, _ = spearmanr(x, y)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        boot.append(kendalltau(x[i], y[i])[0])
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return {"kendall_tau": round(float(t), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "p_value": float(f"{p:.3g}"), "spearman_rho": round(float(rho), 4)}


def tau_over_macs(x: list[float], macs: list[float], quality: list[float], resamples: int = 1000) -> dict:
    """tau(proxy, quality) - tau(MACs, quality), with a paired 95% bootstrap interval (same resampled networks)."""
    x, m, q = (np.asarray(v, dtype=float) for v in (x, macs, quality))
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        diffs.append(kendalltau(x[i], q[i])[0] - kendalltau(m[i], q[i])[0])
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    return {"difference": round(float(kendalltau(x, q)[0] - kendalltau(m, q)[0]), 4),
            "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def tables(entry: dict) -> dict:
    """The correlation tables of one supernet's entry, from its ``networks``."""
    networks, measured = entry["networks"], entry["measured"]
    sign = -1.0 if entry["quality"].startswith("-") else 1.0
    proxies = [p for p in ("synflow", "grad_norm", "snip", "naswot", "jacob_cov") if p in networks[0]]
    quality = [sign * r[measured] for r in networks]
    return {"tau_vs_quality": {k: tau([r[k] for r in networks], quality) for k in [*proxies, *BASELINES]},
            "tau_vs_macs": {k: tau([r[k] for r in networks], [r["macs"] for r in networks]) for k in proxies},
            "tau_minus_macs_tau": {k: tau_over_macs([r[k] for r in networks], [r["macs"] for r in networks], quality)
                                   for k in proxies}}


def run(name: str, n: int, seed: int) -> dict:
    spec = SUPERNETS[name]
    config = load_experiment(ROOT / spec["config"])
    space = get_space(config.space.name, **config.space.options)
    source, identity, rows = source_rows(spec, config)
    rng = np.random.default_rng(seed)
    picked = [rows[i] for i in sorted(rng.choice(len(rows), min(n, len(rows)), replace=False))]
    options = zc_options(name, config)
    evaluator = make_evaluator(spec["evaluator"], space, options)
    check_checkpoint(name, evaluator, options, identity)
    networks, times = [], []
    for i, (key, measured) in enumerate(picked):
        scores, t = proxies_of(name, evaluator, space.to_config(space.from_key(key)))
        networks.append({"key": key, spec["measured"]: measured[spec["measured"]],
                         **{b: measured[b] for b in BASELINES}, **{k: round(v, 6) for k, v in scores.items()}})
        times.append(t)
        if (i + 1) % 10 == 0:
            print(f"{name}: {i + 1}/{len(picked)}", flush=True)
    proxies = [p for p in ("synflow", "grad_norm", "snip", "naswot", "jacob_cov") if p in networks[0]]
    values = [r[spec["measured"]] for r in networks]
    entry = {
        "config": spec["config"], "source": source, "source_identity": identity,
        "zc_evaluator": evaluator.identity, "zc_options": options,
        "networks_in_source": len(rows), "n": len(networks), "seed": seed, "measured": spec["measured"],
        "quality": spec["measured"] if spec["sign"] > 0 else f"-{spec['measured']}",
        "measured_range": [min(values), max(values)],
        "median_seconds": {k: round(statistics.median(t[k] for t in times), 4) for k in [*proxies, "extract"]},
        "networks": networks,
    }
    return {**entry, **tables(entry)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(SUPERNETS))
    parser.add_argument("--out", default="results/strategies/zero_cost.json")
    parser.add_argument("--tables", action="store_true",
                        help="recompute the correlation tables of --out from its networks (no proxies computed)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out_path = ROOT / args.out
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if args.tables:
        for name in [n for n in SUPERNETS if n in result]:
            result[name].update(tables(result[name]))
        for entry in result.get("previous", {}).values():
            entry.update(tables(entry))
        out_path.write_text(json.dumps(result, indent=1) + "\n")
        return
    result.setdefault("machine", f"{platform.processor() or platform.machine()}, torch threads 1, shared CPU")
    for name in [args.only] if args.only else list(SUPERNETS):
        if name in result and result[name].get("config") != SUPERNETS[name]["config"]:
            old = result.pop(name)
            result.setdefault("previous", {})[f"{name} ({old['config']})"] = old
        result[name] = run(name, args.n, args.seed)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result[name].items() if k != "networks"}, indent=1))


if __name__ == "__main__":
    main()
