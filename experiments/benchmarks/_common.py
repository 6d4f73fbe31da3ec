"""Helpers shared by the benchmark scripts: machine facts and result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from linas.runner import package_versions

RESULTS = Path(__file__).resolve().parents[2] / "results" / "benchmarks"


def write_result(name: str, payload: dict, directory: Path = RESULTS) -> Path:
    """Write ``<directory>/<name>.json`` (default ``results/benchmarks``) with the machine and versions alongside."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                      "load_average_1m": os.getloadavg()[0]},
               "versions": package_versions(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
