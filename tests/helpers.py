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
