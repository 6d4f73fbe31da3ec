"""Experiment configs: plugins imported before components are looked up, reference point checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from linas.config import load_experiment
from linas.errors import ConfigError

from helpers import synthetic_config

PLUGIN = textwrap.dedent('''
    from linas.benchmarks.synthetic_mbv3 import SyntheticMobileNetV3
    from linas.evaluator import evaluators
    from linas.strategies.random_search import RandomSearch
    from linas.strategies import strategies


    @evaluators.register("plugin_shifted")
    class Shifted(SyntheticMobileNetV3):
        """synthetic_mbv3 with top-1 moved by ``shift`` points."""

        class Options(SyntheticMobileNetV3.Options):
            shift: float = 0.0

        def __init__(self, space, shift=0.0, **options):
            super().__init__(space, **options)
            self.shift = shift

        @property
        def identity(self):
            return super().identity + f":shift={self.shift}"

        def evaluate_one(self, config):
            metrics = super().evaluate_one(config)
            return {**metrics, "top1": metrics["top1"] + self.shift}


    @strategies.register("plugin_random")
    class PluginRandom(RandomSearch):
        pass
''')


def test_a_plugin_beside_the_config_registers_an_evaluator_and_a_strategy_named_in_it(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "my_components.py").write_text(PLUGIN)
    synthetic_config(folder, budget=12, plugins=["my_components"],
                     evaluator={"name": "plugin_shifted", "options": {"shift": 5.0}},
                     strategies=[{"name": "plugin_random", "options": {"population": 6}}])
    # Run from elsewhere: the module is found beside the config, not through the working directory.
    result = subprocess.run([sys.executable, "-m", "linas.cli", "search", str(folder / "exp.yaml"), "--no-progress"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "plugin_random seed 0: 12 validated" in result.stdout


def test_a_plugin_in_the_working_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "cwd_plugin_module.py").write_text("LOADED = True\n")
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    synthetic_config(config_dir, plugins=["cwd_plugin_module"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_plugin_module", raising=False)
    load_experiment(config_dir / "exp.yaml")
    assert sys.modules["cwd_plugin_module"].LOADED
    assert str(config_dir) not in sys.path  # sys.path is as it was


@pytest.mark.parametrize("source, message", [
    (None, "plugins: cannot import 'no_such_plugin_module': ModuleNotFoundError: No module named"),
    ("import not_there_either\n", "plugins: cannot import 'no_such_plugin_module': ModuleNotFoundError: "
                                  "No module named 'not_there_either'"),
    ("def broken(:\n", "plugins: cannot import 'no_such_plugin_module': SyntaxError: "),
    ("raise RuntimeError('needs a licence key')\n",
     "plugins: cannot import 'no_such_plugin_module': RuntimeError: needs a licence key"),
])
def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path, monkeypatch, source, message):
    if source is not None:
        (tmp_path / "no_such_plugin_module.py").write_text(source)
    monkeypatch.delitem(sys.modules, "no_such_plugin_module", raising=False)
    synthetic_config(tmp_path, plugins=["no_such_plugin_module"])
    with pytest.raises(ConfigError) as err:
        load_experiment(tmp_path / "exp.yaml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("reference", [[-1.0, -1.0], [0.0, 1.0], [1.0, float("inf")], [float("nan"), 1.0]])
def test_a_reference_point_nothing_within_the_bounds_can_dominate_is_refused(tmp_path, reference):
    synthetic_config(tmp_path, reference_point=reference)
    with pytest.raises(ConfigError, match=r"reference_point: every value must be a finite number > 0"):
        load_experiment(tmp_path / "exp.yaml")


@pytest.mark.parametrize("reference", [[1.0, 1.0], [1.1, 0.5], [2, 2]])
def test_reference_points_inside_or_beyond_the_box_are_accepted(tmp_path, reference):
    synthetic_config(tmp_path, reference_point=reference)
    assert load_experiment(tmp_path / "exp.yaml").reference == reference


def test_a_strategy_may_have_its_own_budget_and_the_command_line_overrides_all(tmp_path):
    from linas.config import load_experiment

    from helpers import synthetic_config

    synthetic_config(tmp_path, budget=60, strategies=[{"name": "random", "budget": 500},
                                                      {"name": "nsga2", "label": "n"}])
    config = load_experiment(tmp_path / "exp.yaml")
    assert [s.budget or config.budget for s in config.strategies] == [500, 60]
    config = load_experiment(tmp_path / "exp.yaml", {"budget": 30})
    assert [s.budget or config.budget for s in config.strategies] == [30, 30]
