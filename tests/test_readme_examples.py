"""The README's code examples work as written: the strategy example, used as a plugin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from linas.archive import RunArchive

from helpers import synthetic_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_strategy_example_runs_as_a_plugin_with_constraints(tmp_path):
    code = re.search(r"```python\n(import numpy as np\nfrom linas\.mo .*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "mutate_best.py").write_text(code)
    config = synthetic_config(tmp_path, strategies=[{"name": "mutate_best", "options": {"population": 10}}],
                              budget=30, constraints=[{"metric": "latency", "max": 60.0}])
    config["plugins"] = ["mutate_best"]
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "linas.cli", "search", str(tmp_path / "exp.yaml"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with RunArchive.open_existing(tmp_path / "runs" / "mutate_best" / "seed0") as archive:
        assert archive.n_validated == 30
        assert archive.meta()["strategy_state"]["state"]["rng"]  # restorable, as the example says
