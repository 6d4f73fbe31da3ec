"""experiments/paired_budgets.py: HV at budgets from linas compare's per-run CSVs, paired by seed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location("paired_budgets", REPO / "experiments" / "paired_budgets.py")
paired_budgets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired_budgets)


def write_run(folder, label, seed, hv, failed_at=()):
    rows = []
    for i, h in enumerate(hv):
        if i in failed_at:
            rows.append({"status": "failed", "hypervolume": np.nan})
        rows.append({"status": "ok", "hypervolume": h})
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "runs" / f"{label}_seed{seed}.csv", index=False)


def test_hv_at_budgets_pairs_runs_across_folders(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for seed, (a, b) in enumerate([(0.5, 0.4), (0.6, 0.45), (0.7, 0.65)]):
        write_run(old, "base", seed, [b / 2, b, b])
        write_run(new, "ours", seed, [a / 2, a, a], failed_at=(1,))  # a failed evaluation is not a validation
    write_run(new, "base", 0, [0.2, 0.4, 0.4])  # the same run in both folders
    t = paired_budgets.table(paired_budgets.hv_curves([old, new]), [2], "ours").set_index("strategy")
    assert t.loc["ours", "hv_mean"] == pytest.approx(0.6) and t.loc["base", "hv_mean"] == pytest.approx(0.5)
    assert t.loc["base", "ours_minus_it"] == pytest.approx(np.mean([0.1, 0.15, 0.05]))
    assert t.loc["base", "ours_ahead"] == "3/3" and t.loc["base", "paired_seeds"] == 3
    assert t.loc["base", "wilcoxon_p"] == pytest.approx(0.25)  # 3 pairs, all one way: the smallest p


def test_a_run_that_differs_between_folders_is_refused(tmp_path):
    write_run(tmp_path / "a", "base", 0, [0.1, 0.2])
    write_run(tmp_path / "b", "base", 0, [0.1, 0.3])
    with pytest.raises(SystemExit, match="base seed 0 differs between the folders"):
        paired_budgets.hv_curves([tmp_path / "a", tmp_path / "b"])
