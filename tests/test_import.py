"""``linas import``: outside results become a run that ``linas compare`` reads like ours."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers import synthetic_config
from linas.archive import RunArchive
from linas.cli import main
from linas.errors import ConfigError
from linas.hypervolume import Normalizer, hypervolume
from linas.importing import import_csv
from linas.objectives import Objective
from linas.report import compare_runs, load_run

DYNAST_HEADER = ["Sub-network", "Date", "Model Parameters", "Latency (ms)", "MACs", "Top-1 Acc (%)"]


def ofa_spec(config):
    """As DyNAS-T writes an OFA MobileNetV3 subnet (``wid`` None: the supernet's fixed width)."""
    return {"wid": None, "ks": [config[f"ks_{i}"] for i in range(20)], "e": [config[f"e_{i}"] for i in range(20)],
            "d": [config[f"d_{s}"] for s in range(5)], "r": [224]}


def write_dynast_csv(path, space, evaluator, n, seed=0):
    """A results CSV as DyNAS-T writes it (the subnet as a Python dict literal)."""
    rows, configs = [], []
    for g in space.sample_unique(np.random.default_rng(seed), n):
        c = space.to_config(g)
        m = evaluator.evaluate_one(c)
        configs.append(c)
        rows.append([str(ofa_spec(c)), "2024-01-01 00:00:00", m["params"] * 1e6, m["latency"], m["macs"] * 1e6,
                     m["top1"]])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DYNAST_HEADER)
        w.writerows(rows)
    return configs, rows


def test_dynast_csv_becomes_a_run_with_the_configs_normalization(tmp_path, mbv3_space, synthetic):
    config = synthetic_config(tmp_path)
    configs, rows = write_dynast_csv(tmp_path / "dynast.csv", mbv3_space, synthetic, 40)
    with open(tmp_path / "dynast.csv", "a", newline="") as f:  # a repeat and a failed evaluation
        w = csv.writer(f)
        w.writerow(rows[3])
        w.writerow([str({**ofa_spec(configs[0]), "d": [4, 4, 4, 4, 4]}), "x", "", "", "", ""])
    result = import_csv(tmp_path / "dynast.csv", tmp_path / "exp.yaml", "dynast", 0)
    assert (result.n_rows, result.n_validated, result.n_failed, result.n_duplicates) == (42, 40, 1, 1)
    run = load_run(result.run_dir)
    assert run.label == "dynast" and run.seed == 0 and len(run.hv) == 40
    objectives = [Objective("top1", "max"), Objective("latency", "min")]
    normalizer = Normalizer(objectives, [tuple(o["bounds"]) for o in config["objectives"]])
    values = np.array([[r[5], r[3]] for r in rows])
    for k in (1, 10, 40):  # the HV after each row is the config's HV of the rows so far
        assert run.hv[k - 1] == pytest.approx(hypervolume(values[:k], normalizer, [1.0, 1.0]))
    assert np.all(np.diff(run.hv) >= 0)
    record = RunArchive.open_existing(result.run_dir).records()[0]
    assert record.config == configs[0] and record.metrics["top1"] == pytest.approx(rows[0][5])
    assert record.metrics["macs"] == pytest.approx(rows[0][4])  # kept in the file's units


def test_a_run_exported_and_imported_has_the_same_curve(tmp_path, capsys):
    synthetic_config(tmp_path, strategies=[{"name": "random", "options": {"population": 10}}], budget=30)
    assert main(["search", str(tmp_path / "exp.yaml"), "--no-progress"]) == 0
    original = load_run(tmp_path / "runs" / "random" / "seed0")
    original.archive.export_csv(tmp_path / "evaluations.csv")
    capsys.readouterr()
    assert main(["import", str(tmp_path / "evaluations.csv"), "--config", str(tmp_path / "exp.yaml"),
                 "--label", "copy", "--seed", "0"]) == 0
    assert "30 validated, 0 failed" in capsys.readouterr().out
    copy = load_run(tmp_path / "runs" / "copy" / "seed0")
    np.testing.assert_allclose(copy.hv, original.hv)
    comparison = compare_runs([original, copy], [0.1])
    final = comparison.final.set_index("strategy")["final_hv_mean"]
    assert final["copy"] == pytest.approx(final["random"])
    assert main(["compare", str(tmp_path / "runs"), "-o", str(tmp_path / "cmp")]) == 0
    assert "copy" in capsys.readouterr().out


def test_metric_columns_by_name(tmp_path, mbv3_space, synthetic):
    synthetic_config(tmp_path)
    with open(tmp_path / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc", "ms"])
        for g in mbv3_space.sample_unique(np.random.default_rng(3), 5):
            c = mbv3_space.to_config(g)
            m = synthetic.evaluate_one(c)
            w.writerow([str(c), m["top1"], m["latency"]])
    with pytest.raises(ConfigError, match="no column for objective 'top1'; name it with --metric top1=COLUMN"):
        import_csv(tmp_path / "log.csv", tmp_path / "exp.yaml", "mine", 1)
    result = import_csv(tmp_path / "log.csv", tmp_path / "exp.yaml", "mine", 1, {"top1": "acc", "latency": "ms"})
    assert result.n_validated == 5


@pytest.mark.parametrize("args, fragment", [
    (["--label", "linas"], "--label 'linas' is a strategy of"),
    (["--label", "x", "--metric", "top1"], "--metric takes NAME=COLUMN"),
    (["--label", "x", "--metric", "top1=Accuracy"], "--metric top1=Accuracy: no such column"),
    (["--label", "x", "--config-column", "net"], "no column 'net'"),
])
def test_bad_imports_are_one_line_errors(tmp_path, capsys, mbv3_space, synthetic, args, fragment):
    synthetic_config(tmp_path)
    write_dynast_csv(tmp_path / "d.csv", mbv3_space, synthetic, 3)
    code = main(["import", str(tmp_path / "d.csv"), "--config", str(tmp_path / "exp.yaml"), "--seed", "0", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_bad_rows_name_the_line_and_existing_runs_are_kept(tmp_path, mbv3_space, synthetic):
    synthetic_config(tmp_path)
    configs, rows = write_dynast_csv(tmp_path / "d.csv", mbv3_space, synthetic, 3)
    import_csv(tmp_path / "d.csv", tmp_path / "exp.yaml", "dynast", 0)
    with pytest.raises(ConfigError, match="already holds a run"):
        import_csv(tmp_path / "d.csv", tmp_path / "exp.yaml", "dynast", 0)
    rows[1][0] = str({**ofa_spec(configs[1]), "ks": [9] * 20})
    with open(tmp_path / "bad.csv", "w", newline="") as f:
        csv.writer(f).writerows([DYNAST_HEADER, *rows])
    with pytest.raises(ConfigError, match=r"bad.csv, line 3: .*ks_0=9 is not one of \[3, 5, 7\]"):
        import_csv(tmp_path / "bad.csv", tmp_path / "exp.yaml", "other", 0)
