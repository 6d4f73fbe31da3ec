"""Plain helpers for the tests (importable as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from linas.evaluator import Evaluator
from linas.objectives import Objective

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


def search_process(config_path: Path, output: Path):
    """``linas search`` of a config in a child process (so a test can kill it)."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "linas.cli", "search", str(config_path), "--no-progress",
                             "--output", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def archived_rows(run_dir: Path) -> int:
    """Evaluations in a run's archive, read without disturbing a search writing it (0 if none yet)."""
    import sqlite3

    path = run_dir / "archive.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


class Counting(Evaluator):
    """The inner evaluator's top-1 and latency, counting evaluations per network and fidelity;
    fails the networks whose key hash hits ``fail_every``."""

    metrics = (Objective("top1", "max", "%"), Objective("latency", "min", "ms"))
    supports_fidelity = True

    def __init__(self, inner, fail_every: int = 0):
        super().__init__(inner.space)
        self.inner, self.fail_every = inner, fail_every
        self.calls: Counter = Counter()

    @property
    def identity(self):
        return f"counting:{self.inner.identity}:{self.fail_every}"

    def evaluate_one(self, config, fidelity=1.0):
        key = self.space.key(self.space.from_config(config))
        self.calls[key, fidelity] += 1
        if self.fail_every and sum(map(ord, key)) % self.fail_every == 0:
            raise RuntimeError("broken network")
        out = self.inner.evaluate_one(config, fidelity=fidelity)
        return {"top1": out["top1"], "latency": out["latency"]}
