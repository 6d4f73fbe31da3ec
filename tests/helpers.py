"""Plain helpers for the tests (importable as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def synthetic_config(tmp_path: Path, **overrides) -> dict:
    """A small synthetic experiment, written to ``tmp_path/exp.yaml``."""
    config = {
        "name": "test",
        "space": {"name": "ofa_mbv3"},
        "evaluator": {"name": "synthetic_mbv3", "options": {"noise": 0.1}},
        "objectives": [{"name": "top1", "bounds": [60, 80]}, {"name": "latency", "bounds": [10, 160]}],
        "strategies": [{"name": "linas", "options": {"population": 20, "inner_evaluations": 1000}}],
        "seeds": [0],
        "budget": 60,
        "output": str(tmp_path / "runs"),
    }
    config.update(overrides)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    return config
