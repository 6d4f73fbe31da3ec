"""The linas command: help, bad input as one line, search -> report -> compare."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import synthetic_config

COMMANDS = ["search", "report", "compare", "train-supernet", "build-lut"]


def linas(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "linas.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = linas(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "usage: linas" in result.stdout


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("linas: error: ")
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0]


@pytest.mark.parametrize("change, fragments", [
    ({"colour": "blue"}, ["colour: unknown key"]),
    ({"budget": -5}, ["budget: Input should be greater than 0"]),
    ({"budget": "many"}, ["budget: Input should be a valid integer"]),
    ({"strategies": [{"name": "annealing"}]}, ["unknown strategy 'annealing'", "known: ", "linas", "nsga2", "random"]),
    ({"strategies": [{"name": "linas", "options": {"populaton": 5}}]}, ["strategy 'linas'", "'populaton'"]),
    ({"objectives": [{"name": "top1", "bounds": [60, 80]}, {"name": "energy", "bounds": [0, 1]}]},
     ["unknown objective 'energy'", "it measures: top1, latency, macs, params"]),
    ({"objectives": [{"name": "top1", "bounds": [80, 60]}, {"name": "latency", "bounds": [0, 1]}]},
     ["objectives.0.bounds", "low < high"]),
    ({"space": {"name": "resnet50"}}, ["unknown space 'resnet50'"]),
    ({"evaluator": {"name": "oracle"}}, ["unknown evaluator 'oracle'"]),
    ({"evaluator": {"name": "synthetic_mbv3", "options": {"noise": -1}}},
     ["evaluator 'synthetic_mbv3': noise: Input should be greater than or equal to 0"]),
    ({"evaluator": {"name": "synthetic_mbv3", "options": {"noise": "loud"}}},
     ["evaluator 'synthetic_mbv3': noise: Input should be a valid number"]),
    ({"evaluator": {"name": "synthetic_mbv3", "options": {"nosie": 1}}},
     ["evaluator 'synthetic_mbv3': option 'nosie' is not known; known: noise, noise_seed, width_mult, delay"]),
    ({"space": {"name": "ofa_mbv3", "options": {"resolutions": "big"}}}, ["space 'ofa_mbv3': resolutions: "]),
    ({"executor": {"name": "local", "options": {"workers": 2}}}, ["executor 'local': option 'workers' is not known"]),
    ({"reference_point": [1.0]}, ["reference_point needs 2 values"]),
    ({"seeds": [1, 1]}, ["seeds are repeated"]),
])
def test_bad_configs_give_one_line_and_exit_2(tmp_path, change, fragments):
    synthetic_config(tmp_path, **change)
    result = linas("search", tmp_path / "exp.yaml", "--no-progress")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_missing_and_malformed_files_give_one_line(tmp_path):
    assert_one_line_error(linas("search", tmp_path / "nope.yaml"), "no such file")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    assert_one_line_error(linas("search", tmp_path / "bad.yaml"), "not valid YAML")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert_one_line_error(linas("search", tmp_path / "list.yaml"), "expected a mapping")
    assert_one_line_error(linas("report", tmp_path), "not a run directory")
    assert_one_line_error(linas("compare", tmp_path / "none"), "no such run directory")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"supernet": "nothing"}))
    assert_one_line_error(linas("train-supernet", tmp_path / "t.yaml"), "unknown supernet trainer 'nothing'")


def test_search_report_compare(tmp_path):
    synthetic_config(tmp_path, budget=45, seeds=[0, 1], strategies=[
        {"name": "linas", "options": {"population": 15, "inner_evaluations": 600}},
        {"name": "random", "options": {"population": 15}}])
    result = linas("search", tmp_path / "exp.yaml", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("45 validated") == 4
    runs = tmp_path / "runs"

    report = linas("report", runs / "linas" / "seed0")
    assert report.returncode == 0, report.stderr
    out = runs / "linas" / "seed0" / "report"
    for name in ("evaluations.csv", "hv_curve.png", "pareto_front.png", "predictor_diagnostics.csv"):
        assert (out / name).stat().st_size > 0

    compare = linas("compare", runs, "-o", tmp_path / "cmp", "--targets", "0.5", "0.6")
    assert compare.returncode == 0, compare.stderr
    for name in ("hv_curves.png", "pareto_fronts.png", "final_hv.csv", "validations_to_reach.csv",
                 "wilcoxon.csv", "comparison.md"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    for seed in (0, 1):
        assert (tmp_path / "cmp" / "runs" / f"random_seed{seed}.csv").stat().st_size > 0
        diagnostics = (tmp_path / "cmp" / "runs" / f"linas_seed{seed}_predictors.csv").read_text()
        assert diagnostics.startswith("step,objective") and len(diagnostics.splitlines()) >= 3
    assert not (tmp_path / "cmp" / "runs" / "random_seed0_predictors.csv").exists()
    machines = (tmp_path / "cmp" / "comparison.md").read_text().split("## Machines")[1]
    assert "cpus" in machines and "4 run(s)" in machines
    assert "linas" in compare.stdout and "random" in compare.stdout

    # The same runs as they stood after 30 validations (two LINAS iterations of 15).
    cut = linas("compare", runs, "-o", tmp_path / "cut", "--budget", "30")
    assert cut.returncode == 0, cut.stderr
    final = pd.read_csv(tmp_path / "cut" / "final_hv.csv").set_index("strategy")
    assert final["validations"].tolist() == [30, 30]
    for label in ("linas", "random"):
        full = [pd.read_csv(tmp_path / "cmp" / "runs" / f"{label}_seed{s}.csv") for s in (0, 1)]
        cut_runs = [pd.read_csv(tmp_path / "cut" / "runs" / f"{label}_seed{s}.csv") for s in (0, 1)]
        for whole, part in zip(full, cut_runs):
            assert (part["status"] == "ok").sum() == 30 and part.equals(whole.iloc[: len(part)])
        assert final.loc[label, "final_hv_mean"] == pytest.approx(np.mean([p["hypervolume"].iloc[-1]
                                                                           for p in cut_runs]))
        assert final.loc[label, "final_hv_mean"] <= pd.read_csv(tmp_path / "cmp" / "final_hv.csv").set_index(
            "strategy").loc[label, "final_hv_mean"]
    steps = pd.read_csv(tmp_path / "cut" / "runs" / "linas_seed0_predictors.csv")["step"]
    all_steps = pd.read_csv(tmp_path / "cmp" / "runs" / "linas_seed0_predictors.csv")["step"]
    assert steps.max() == 1 and all_steps.max() == 2
    assert_one_line_error(linas("compare", runs, "--budget", "0"), "--budget must be a positive number")


def test_search_runs_only_the_strategies_named(tmp_path):
    synthetic_config(tmp_path, budget=20, strategies=[
        {"name": "random", "options": {"population": 10}},
        {"name": "nsga2", "options": {"population": 10}},
        {"name": "random", "label": "random_b", "options": {"population": 10}}])
    result = linas("search", tmp_path / "exp.yaml", "--no-progress", "--strategies", "random_b", "nsga2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()) == ["nsga2", "random_b"]
    assert "2 strategies x 1 seeds" in result.stdout
    assert_one_line_error(linas("search", tmp_path / "exp.yaml", "--strategies", "nsga3"),
                          "--strategies: nsga3 not in the config 'test'", "random, nsga2, random_b")
    assert not (tmp_path / "runs" / "random").exists()


def test_the_search_engine_runs_without_importing_torch(tmp_path):
    synthetic_config(tmp_path, budget=25, strategies=[
        {"name": "linas", "options": {"population": 10, "inner_evaluations": 200}},
        {"name": "nsga2", "options": {"population": 10}}])
    code = ("import sys; from linas.cli import main; rc = main(['search', sys.argv[1], '--no-progress']); "
            "assert rc == 0; import predictors; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('torch-free')")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "exp.yaml")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torch-free" in result.stdout


def test_build_lut_keeps_an_existing_table_unless_forced(tmp_path):
    table = tmp_path / "lut.json"
    table.write_text('{"kept": true}')
    config = tmp_path / "lut.yaml"
    config.write_text(yaml.safe_dump({"supernet": "ofa_mbv3", "output": str(table)}))
    result = linas("build-lut", str(config))
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stderr and "--force" in result.stderr
    assert table.read_text() == '{"kept": true}'
