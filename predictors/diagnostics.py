"""How well predictions match measurements."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


def prediction_quality(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Kendall tau (rank agreement) and mean absolute error of predictions."""
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    tau = float(kendalltau(p, m).statistic) if len(p) > 1 else float("nan")
    return {"kendall_tau": tau, "mae": float(np.mean(np.abs(p - m))) if len(p) else float("nan"), "n": len(p)}
