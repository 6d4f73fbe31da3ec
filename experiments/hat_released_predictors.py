"""HAT's own released latency predictors scored on HAT's measurements, for comparison.

    python experiments/hat_released_predictors.py DIR

DIR holds HAT's ``latency_dataset/predictors/{task}_{cpu|gpu}_{device}.pt`` (repository
mit-han-lab/hardware-aware-transformers; MIT licensed; not shipped with linas). Each is
evaluated as HAT's ``LatencyPredictor.predict_lat`` does (features / feature_norm, the
torch ``Net`` forward pass, times lat_norm) on every row of HAT's measurements of its
device and task. HAT trained each on a random 80 % of those rows, so these scores are
mostly in-sample: an optimistic reference for the out-of-fold scores of our fits. Adds
``hat_released_predictors`` (and the agreement of our shipped fits with HAT's) to
``results/hat/device_latency_predictor.json``. Needs torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import kendalltau

from linas.benchmarks import hat_latency as hl

OUT = Path("results/hat/device_latency_predictor.json")


class Net(nn.Module):  # HAT's latency_predictor.Net
    def __init__(self, feature_dim=10, hidden_dim=400, hidden_layer_num=3):
        super().__init__()
        self.first_layer = nn.Linear(feature_dim, hidden_dim)
        self.layers = nn.ModuleList([nn.Linear(hidden_dim, hidden_dim) for _ in range(hidden_layer_num)])
        self.predict = nn.Linear(hidden_dim, 1)

    def forward(self, x):
        x = F.relu(self.first_layer(x))
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.predict(x)


def main() -> None:
    folder = Path(sys.argv[1])
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    scores = {}
    for task in hl.TASKS:
        for device, (kind, lat_norm) in hl.DEVICES.items():
            path = folder / f"{task}_{kind}_{device}.pt"
            if not path.is_file():
                continue
            net = Net()
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            x, y = hl.read_dataset(task, device)
            with torch.no_grad():
                p = net(torch.Tensor(x / hl.FEATURE_NORM)).numpy()[:, 0].astype(np.float64) * lat_norm
            entry = {"kendall_tau": float(kendalltau(y, p).statistic), "mape": float(np.mean(np.abs(p - y) / y)),
                     "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))), "n": int(len(y)),
                     "note": "HAT's released predictor on all rows (about 80 % of them its training rows)"}
            shipped = hl.shipped_path(task, device)
            if shipped.is_file():
                ours = hl.LatencyMLP.load(shipped).predict(x)
                entry["agreement_with_linas_fit"] = {"kendall_tau": float(kendalltau(p, ours).statistic),
                                                     "mean_abs_rel_diff": float(np.mean(np.abs(ours - p) / p))}
            scores[f"{task}/{device}"] = entry
            print(f"{task:12s} {device:12s} HAT's predictor: tau {entry['kendall_tau']:.4f}  "
                  f"MAPE {100 * entry['mape']:.2f} %  RMSE {entry['rmse_ms']:.1f} ms")
    results["hat_released_predictors"] = scores
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
