"""Helpers of the OFA MobileNetV3 benchmarks: result files under ``results/mbv3/``."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

from linas.runner import package_versions

RESULTS = Path(__file__).resolve().parents[2] / "results" / "mbv3"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_result(name: str, payload: dict) -> Path:
    """Write ``results/mbv3/<name>.json`` with the machine, its load and package versions."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "peak_rss_mb": round(peak_rss_mb(), 1),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "load_average_1m": os.getloadavg()[0]},
               "versions": package_versions(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps({k: v for k, v in payload.items() if k not in ("versions", "rows")}, indent=1))
    return path
