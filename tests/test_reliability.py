"""Bad inputs and faults: each ends as a failed evaluation or as one line and exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from linas.evaluator import Evaluator
from linas.objectives import Objective


class Returns(Evaluator):
    """Returns whatever ``make`` gives for a config (or raises what it raises)."""

    metrics = (Objective("top1", "max"), Objective("latency", "min"))

    def __init__(self, space, make):
        super().__init__(space)
        self.make = make

    @property
    def identity(self) -> str:
        return "returns"

    def evaluate_one(self, config):
        return self.make()


@pytest.mark.parametrize("value", [np.float32(71.5), np.float64(71.5), np.int64(71), 71])
def test_numpy_and_integer_metrics_are_stored_as_python_floats(toy_space, value):
    outcome = Returns(toy_space, lambda: {"top1": value, "latency": np.float32(3.25)}).guarded({})
    assert outcome.ok, outcome.error
    assert outcome.metrics == {"top1": float(value), "latency": 3.25}
    assert all(type(v) is float for v in outcome.metrics.values())
    json.dumps(outcome.metrics)  # what the archive does with them


@pytest.mark.parametrize("value, message", [
    ("71.5", "metric 'top1' is a str ('71.5'), not a number"),
    (None, "metric 'top1' is a NoneType (None), not a number"),
    (True, "metric 'top1' is a bool (True), not a number"),
    ([71.5], "metric 'top1' is a list ([71.5]), not a number"),
    (float("nan"), "metric 'top1' is nan (float)"),
    (np.float32("inf"), "metric 'top1' is inf (float32)"),
])
def test_non_numeric_or_non_finite_metrics_fail_the_evaluation_naming_the_metric_and_type(toy_space, value,
                                                                                          message):
    outcome = Returns(toy_space, lambda: {"top1": value, "latency": 3.0}).guarded({})
    assert not outcome.ok and outcome.metrics == {}
    assert outcome.error == message


def test_an_evaluation_that_returns_no_mapping_fails(toy_space):
    outcome = Returns(toy_space, lambda: 71.5).guarded({})
    assert outcome.error == "the evaluation returned a float, not a mapping of metrics"


def test_system_exit_in_an_evaluator_is_a_failed_evaluation_but_ctrl_c_stops(toy_space):
    outcome = Returns(toy_space, lambda: sys.exit(3)).guarded({})
    assert not outcome.ok and outcome.error == "SystemExit: 3"

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Returns(toy_space, interrupt).guarded({})


# -- every file and database problem is one line naming the path, exit status 2 --------------

import shutil  # noqa: E402

from linas.cli import main  # noqa: E402

from helpers import synthetic_config  # noqa: E402

RANDOM = [{"name": "random", "options": {"population": 6}}]


def one_line_error(capsys, argv, *fragments):
    """Run the CLI in process; assert it stopped with one 'linas: error:' line holding ``fragments``."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linas: error: "), err
    for f in fragments:
        assert str(f) in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished experiment (2 seeds of random search, 6 validations each) to copy and damage."""
    root = tmp_path_factory.mktemp("finished")
    synthetic_config(root, budget=6, seeds=[0, 1], strategies=RANDOM, cache=str(root / "runs" / "cache.sqlite"))
    assert main(["search", str(root / "exp.yaml"), "--no-progress"]) == 0
    return root


@pytest.fixture
def experiment(finished, tmp_path):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    config = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    config["output"], config["cache"] = str(tmp_path / "runs"), str(tmp_path / "runs" / "cache.sqlite")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.mark.parametrize("content, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a UTF-8 text file (byte 0 is 0x89)"),
    ("name: caf\xe9\n".encode("latin-1"), "not a UTF-8 text file (byte 9 is 0xe9)"),
    (b"name: a\x00b\n", "not valid YAML"),
])
def test_a_binary_or_non_utf8_config_is_one_line(tmp_path, capsys, content, fragment):
    (tmp_path / "exp.yaml").write_bytes(content)
    one_line_error(capsys, ["search", tmp_path / "exp.yaml"], tmp_path / "exp.yaml", fragment)


def test_output_paths_that_cannot_be_written_are_one_line(tmp_path, capsys):
    synthetic_config(tmp_path, budget=6, strategies=RANDOM)
    config = tmp_path / "exp.yaml"
    long = tmp_path / ("x" * 300)
    one_line_error(capsys, ["search", config, "--no-progress", "--output", long], long, "File name too long")
    (tmp_path / "afile").write_text("not a folder")
    one_line_error(capsys, ["search", config, "--no-progress", "--output", tmp_path / "afile"],
                   tmp_path / "afile", "Not a directory")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a folder even root cannot write in")
def test_an_unwritable_output_directory_is_one_line(tmp_path, capsys):
    synthetic_config(tmp_path, budget=6, strategies=RANDOM, output="/sys/linas-test-output")
    one_line_error(capsys, ["search", tmp_path / "exp.yaml", "--no-progress"], "/sys/linas-test-output",
                   "Operation not permitted")


def test_a_cache_path_that_is_a_directory_is_one_line(experiment, capsys):
    (experiment / "adir").mkdir()
    config = yaml.safe_load((experiment / "exp.yaml").read_text())
    (experiment / "exp.yaml").write_text(yaml.safe_dump({**config, "cache": str(experiment / "adir")}))
    one_line_error(capsys, ["search", experiment / "exp.yaml", "--no-progress"], experiment / "adir",
                   "is a directory, not a database file")


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    for extra in path.parent.glob(path.name + "-*"):  # WAL leftovers
        extra.unlink()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\0" * len(data))


@pytest.mark.parametrize("how", ["truncated", "zero-filled"])
def test_a_damaged_cache_or_archive_stops_search_report_and_compare_with_one_line(experiment, capsys, how):
    runs = experiment / "runs"
    cache = runs / "cache.sqlite"
    damage(cache, how)
    one_line_error(capsys, ["search", experiment / "exp.yaml", "--no-progress", "--budget", "12"], cache)
    cache.unlink()
    archive = runs / "random" / "seed0" / "archive.sqlite"
    damage(archive, how)
    for argv in (["search", experiment / "exp.yaml", "--no-progress", "--budget", "12"],
                 ["report", archive.parent], ["compare", runs, "-o", experiment / "cmp"]):
        one_line_error(capsys, argv, archive)


def test_compare_onto_an_existing_file_is_one_line(experiment, capsys):
    (experiment / "taken").write_text("keep me")
    one_line_error(capsys, ["compare", experiment / "runs", "-o", experiment / "taken"], experiment / "taken",
                   "exists and is not a directory")
    one_line_error(capsys, ["report", experiment / "runs" / "random" / "seed0", "-o", experiment / "taken"],
                   "exists and is not a directory")
    assert (experiment / "taken").read_text() == "keep me"


def test_a_run_killed_before_its_settings_were_written_is_one_line(experiment, capsys):
    import sqlite3

    run = experiment / "runs" / "random" / "seed1"
    with sqlite3.connect(run / "archive.sqlite") as conn:
        conn.execute("DELETE FROM meta")
    one_line_error(capsys, ["report", run], run, "stopped before its settings were written")
    one_line_error(capsys, ["compare", experiment / "runs"], run, "stopped before its settings were written")


def test_a_budget_of_zero_is_refused(experiment, capsys):
    one_line_error(capsys, ["search", experiment / "exp.yaml", "--budget", "0"], "--budget must be a positive")
    one_line_error(capsys, ["compare", experiment / "runs", "--budget", "0"], "--budget must be a positive")
