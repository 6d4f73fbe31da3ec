"""Run the full-scale experiment configs end to end on a small slice of the stand-in data.

The configs for ImageNet (``imagenet_ofa_mbv3.yaml`` with its lookup-table config) and for
WMT'14 (``wmt14_hat.yaml`` with its training and lookup-table configs) need data and
checkpoints that are not here. This script runs each of them as written, through the same
``linas`` commands a user runs, with only paths and sizes replaced (printed and recorded):

- ImageNet: an ImageNet-layout folder (``train/<wnid>``, ``val/<wnid>``, 1,000 class
  folders) holding a few Tiny-ImageNet images of its 200 ImageNet classes, and a file in
  the format and under the name of OFA's released w1.2 supernet, with random weights;
- WMT'14: the full-size ``hat_wmt14_ende`` SuperTransformer trained for a few updates on a
  slice of newstest2014 by the training config, then searched with BLEU on another slice.

The numbers it prints (top-1 and BLEU of random weights) check the plumbing, not models.

    python experiments/check_full_scale.py [--only imagenet|wmt14] [--work DIR]

Needs Tiny-ImageNet unpacked in ~/.cache/linas/data (ImageNet part) and ../shared/data
(WMT'14 part). Writes results/full_scale_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
TINY = Path("~/.cache/linas/data/tiny-imagenet-200").expanduser()
NEWSTEST = ROOT.parent / "shared" / "data" / "wmt14"
OFA_NAME = "ofa_mbv3_d234_e346_k357_w1.2"


def linas(*args: str) -> float:
    """Run a ``linas`` command like a user; returns its wall time, exits on failure."""
    start = time.perf_counter()
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "linas.cli", *args], cwd=ROOT, env=env, text=True,
                            capture_output=True)
    if result.returncode != 0:
        sys.exit(f"linas {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def write_config(base: str, path: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` config with ``changes`` applied (dotted keys), written to ``path``."""
    config = yaml.safe_load((CONFIGS / base).read_text())
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def search_summary(run_root: Path) -> dict[str, Any]:
    from linas.archive import RunArchive

    out = {}
    for archive_dir in sorted(run_root.glob("*/seed*")):
        records = RunArchive(archive_dir).records()
        out[f"{archive_dir.parent.name}/{archive_dir.name}"] = [
            {"status": r.status, **{k: round(v, 4) for k, v in r.metrics.items()}} for r in records]
    return out


# ------------------------------------------------------------------ ImageNet (a)
def imagenet_folder(work: Path, train_per_class: int, val_per_class: int) -> Path:
    """ImageNet's layout with 1,000 class folders; Tiny-ImageNet images in its 200 classes."""
    if not (TINY / "wnids.txt").is_file():
        sys.exit(f"{TINY}: Tiny-ImageNet is not unpacked (mkdir -p ~/.cache/linas/data && "
                 "tar xzf ../shared/data/images/tiny-imagenet-200.tar.gz -C ~/.cache/linas/data)")
    root = work / "imagenet"
    wnids = sorted(TINY.joinpath("wnids.txt").read_text().split())
    val = {}
    for line in TINY.joinpath("val", "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        val.setdefault(wnid, []).append(name)
    classes = wnids + [f"zz_unused_{i:03d}" for i in range(1000 - len(wnids))]
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
    for wnid in wnids:
        for name in sorted(os.listdir(TINY / "train" / wnid / "images"))[:train_per_class]:
            os.symlink(TINY / "train" / wnid / "images" / name, root / "train" / wnid / name)
        for name in sorted(val[wnid])[:val_per_class]:
            os.symlink(TINY / "val" / "images" / name, root / "val" / wnid / name)
    return root


def check_imagenet(work: Path, budget: int) -> dict[str, Any]:
    import torch

    from supernets.mobilenetv3 import OFAMobileNetV3

    root = imagenet_folder(work, train_per_class=2, val_per_class=1)
    checkpoint = work / OFA_NAME
    torch.manual_seed(0)
    torch.save({"state_dict": OFAMobileNetV3(n_classes=1000, width_mult=1.2).state_dict()}, checkpoint)
    lut = work / "imagenet_lut.json"
    lut_changes = {"output": str(lut), "warmup": 1, "repeats": 3}
    write_config("imagenet_ofa_mbv3_lut.yaml", work / "lut.yaml", lut_changes)
    lut_s = linas("build-lut", str(work / "lut.yaml"))
    changes = {"evaluator.options.checkpoint": str(checkpoint), "evaluator.options.data.root": str(root),
               "evaluator.options.data.workers": 1, "evaluator.options.calib_images": 32,
               "evaluator.options.calib_batch": 32, "evaluator.options.val_images": 64,
               "evaluator.options.batch_size": 32, "evaluator.options.lut": str(lut),
               "evaluator.options.threads": 1, "strategies": [{"name": "linas", "options": {"population": 3}}],
               "seeds": [0], "budget": budget, "cache": str(work / "imagenet_runs" / "cache.sqlite"),
               "output": str(work / "imagenet_runs")}
    write_config("imagenet_ofa_mbv3.yaml", work / "search.yaml", changes)
    search_s = linas("search", str(work / "search.yaml"), "--no-progress")
    return {"configs": ["imagenet_ofa_mbv3_lut.yaml", "imagenet_ofa_mbv3.yaml"],
            "replaced": {"lut": lut_changes, "search": changes},
            "data": f"{root} (1,000 class folders; 2 train and 1 val Tiny-ImageNet images in each of its 200)",
            "checkpoint": f"{OFA_NAME} in OFA's format, random weights",
            "build_lut_s": round(lut_s, 1), "search_s": round(search_s, 1),
            "runs": search_summary(work / "imagenet_runs")}


# ------------------------------------------------------------------ WMT'14 (c)
def newstest_slices(work: Path, train: int, valid: int, search: int) -> dict[str, tuple[Path, Path]]:
    src = (NEWSTEST / "newstest2014.en-de.en").read_text(encoding="utf-8").splitlines()
    tgt = (NEWSTEST / "newstest2014.en-de.de").read_text(encoding="utf-8").splitlines()
    bounds = {"train": (0, train), "valid": (train, train + valid), "search": (train + valid, train + valid + search)}
    out = {}
    for name, (a, b) in bounds.items():
        paths = (work / f"{name}.en", work / f"{name}.de")
        paths[0].write_text("\n".join(src[a:b]) + "\n", encoding="utf-8")
        paths[1].write_text("\n".join(tgt[a:b]) + "\n", encoding="utf-8")
        out[name] = paths
    return out


def check_wmt14(work: Path, budget: int) -> dict[str, Any]:
    if not (NEWSTEST / "newstest2014.en-de.en").is_file():
        sys.exit(f"{NEWSTEST}: newstest2014 is not there (../shared/data/wmt14)")
    s = newstest_slices(work, train=400, valid=40, search=16)
    ckpt = work / "wmt14_hat"
    train_changes = {"output": str(ckpt), "data.train": {"src": str(s["train"][0]), "tgt": str(s["train"][1])},
                     "data.valid": {"src": str(s["valid"][0]), "tgt": str(s["valid"][1])},
                     "train.max_updates": 3, "train.max_tokens": 1024, "train.warmup": 1, "train.threads": 1,
                     "train.progress": False}
    write_config("wmt14_hat_train.yaml", work / "train.yaml", train_changes)
    train_s = linas("train-supernet", str(work / "train.yaml"))
    lut = ckpt / "latency_lut.json"
    lut_changes = {"output": str(lut), "warmup": 0, "repeats": 1, "threads": 1}
    write_config("wmt14_hat_lut.yaml", work / "lut.yaml", lut_changes)
    lut_s = linas("build-lut", str(work / "lut.yaml"))
    changes = {"evaluator.options.checkpoint": str(ckpt),
               "evaluator.options.corpus": {"src": str(s["search"][0]), "tgt": str(s["search"][1])},
               "evaluator.options.lut": str(lut), "evaluator.options.threads": 1,
               "strategies": [{"name": "linas", "options": {"population": 3}}], "seeds": [0], "budget": budget,
               "cache": str(work / "wmt14_runs" / "cache.sqlite"), "output": str(work / "wmt14_runs")}
    write_config("wmt14_hat.yaml", work / "search.yaml", changes)
    search_s = linas("search", str(work / "search.yaml"), "--no-progress")
    return {"configs": ["wmt14_hat_train.yaml", "wmt14_hat_lut.yaml", "wmt14_hat.yaml"],
            "replaced": {"train": train_changes, "lut": lut_changes, "search": changes},
            "data": "newstest2014 lines 1-400 (training), 401-440 (validation), 441-456 (search)",
            "train_s": round(train_s, 1), "build_lut_s": round(lut_s, 1), "search_s": round(search_s, 1),
            "runs": search_summary(work / "wmt14_runs")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["imagenet", "wmt14"])
    parser.add_argument("--work", help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--budget", type=int, default=5, help="validations per search (3 initial, then LINAS)")
    parser.add_argument("--output", default=str(ROOT / "results" / "full_scale_check.json"))
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="linas-full-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    from linas.runner import machine

    result: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        for name, check in (("imagenet", check_imagenet), ("wmt14", check_wmt14)):
            if args.only in (None, name):
                (work / name).mkdir(exist_ok=True)
                result[name] = check(work / name, args.budget)
                print(f"{name}: ok", json.dumps({k: v for k, v in result[name].items() if k.endswith("_s")}))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
