"""Fit HAT's latency predictor per device (WMT'14 En-De), cross-validate it, ship the fits.

    python experiments/fit_hat_latency.py            # wmt14ende on raspberrypi, xeon, titanxp
    python experiments/fit_hat_latency.py --tasks wmt14ende wmt14enfr wmt19ende iwslt14deen

For each device and task: 5-fold cross-validation (HAT's training recipe on 4 folds = 80 %
of the rows, as HAT trains on 80 %; scored on the fifth) -> Kendall tau, MAPE, RMSE and R^2
of the out-of-fold predictions, written to ``results/hat/device_latency_predictor.json``;
then one fit on all rows with seed 0, stored as float16 in
``linas/data/hat_latency/predictors/{task}_{device}_seed0.npz`` (WMT'14 En-De only, unless
``--ship-all``), which ``hat_device_latency`` loads. Deterministic: the same numbers on the
same machine and library versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from linas.benchmarks import hat_latency as hl

OUT = Path("results/hat/device_latency_predictor.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["wmt14ende"])
    parser.add_argument("--devices", nargs="+", default=list(hl.DEVICES))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ship-all", action="store_true", help="ship the fits of every task, not only wmt14ende")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()

    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results.setdefault("runs", {})
    results["protocol"] = {
        "model": "HAT latency_predictor.py: Linear(10,400) ReLU [Linear(400,400) ReLU] x3 Linear(400,1), "
                 "torch nn.Linear init",
        "training": f"Adam lr {hl.LEARNING_RATE}, {hl.TRAIN_STEPS} steps, batch {hl.BATCH_SIZE}, MSE on "
                    "latency / lat_norm, features / feature_norm",
        "feature_norm": hl.FEATURE_NORM.tolist(),
        "lat_norm": {d: v[1] for d, v in hl.DEVICES.items()},
        "cross_validation": f"{args.folds}-fold, rows shuffled with seed 0, fold k fitted with seed k, "
                            "out-of-fold predictions with float16-rounded weights (as shipped)",
        "latency": "encoder + decoder mean latency (ms), HAT's measurement",
    }
    for task in args.tasks:
        for device in args.devices:
            try:
                hl.dataset_file(task, device)
            except Exception:  # noqa: BLE001 - HAT measured this task on some devices only
                continue
            start = time.perf_counter()
            cv = hl.cross_validate(task, device, folds=args.folds)
            x, y = hl.read_dataset(task, device)
            model = hl.fit_mlp(x, y, hl.DEVICES[device][1], seed=hl.DEFAULT_SEED)
            full, half = model.predict(x), model.half().predict(x)
            if task == "wmt14ende" or args.ship_all:
                model.save(hl.shipped_path(task, device), dtype=np.float16)
            cv["train_fit"] = {"mape": float(np.mean(np.abs(half - y) / y)),
                               "max_rel_change_float16": float(np.max(np.abs(half - full) / full))}
            cv["latency_ms"] = {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())}
            cv["seconds"] = round(time.perf_counter() - start, 1)
            results["runs"][f"{task}/{device}"] = cv
            print(f"{task:12s} {device:12s} tau {cv['kendall_tau']:.4f}  MAPE {100 * cv['mape']:.2f} %  "
                  f"RMSE {cv['rmse_ms']:.1f} ms  ({cv['seconds']} s)", flush=True)
            results["machine"] = platform.platform()
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
