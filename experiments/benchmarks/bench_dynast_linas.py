"""DyNAS-T 1.6.0's own LINAS (Intel Labs) on linas's synthetic MobileNetV3 benchmark, paired with our runs.

    python experiments/benchmarks/bench_dynast_linas.py --seeds 0 1 --budget 300 --output runs/linas_ehvi_synthetic
    linas compare runs/linas_ehvi_synthetic -o runs/linas_ehvi_synthetic/comparison --reference linas

For each seed ``k`` this runs DyNAS-T's ``LINAS.search()`` (``dynast/search/search_tactic.py``), unchanged,
with linas's evaluator of the experiment config (default ``experiments/configs/linas_ehvi_synthetic.yaml``:
``synthetic_mbv3``, noise 0.1, noise_seed 0, objectives top1 in [60, 80] and latency in [10, 160]) in place of
OFA's ImageNet supernet, writes DyNAS-T's results CSV, and imports it with :func:`linas.importing.import_csv`
as the run ``OUTPUT/dynast_linas/seed<k>`` of that config, so ``linas compare OUTPUT`` sets it beside
linas's strategies with the same normalization and reference point. Next to the archive:
``dynast_results.csv`` (as DyNAS-T wrote it, imported as it is) and ``dynast_run.json`` (DyNAS-T version, seed, options, per-loop predictor choices,
validation counts, wall time). A seed whose run exists is skipped; delete its folder to run it again.

What DyNAS-T 1.6.0's LINAS does (``LINAS.search``, ``supernet='ofa_mbv3_d234_e346_k357_w1.0'``, two objectives):

- the encoding (``OFAMobileNetV3Encoding``, ``EncodingBase``): a 45-integer pymoo vector, the choice indices of
  ``ks`` x 20 in (3, 5, 7), ``e`` x 20 in (3, 4, 6) and ``d`` x 5 in (2, 3, 4) -- the order and choice order of
  linas's ``ofa_mbv3`` genome. Blocks beyond a stage's depth keep whatever values the vector has (DyNAS-T does
  not canonicalize them); linas maps such a vector to its canonical config (those blocks at kernel 3, expand 3),
  so two DyNAS-T vectors that differ only there are one network for linas (see "Budget");
- loop: validate the population (``population`` = 50 networks; the first one is random, here linas's paired
  initial population), then fit one ``Predictor`` per optimization metric on every row of the results CSV
  (rows deduplicated on the subnet string): features ``onehot_generic`` of the 45-vector (135 columns, unused
  blocks included), labels scaled by ``10**(floor(log10(max|y|)) - 1)``, ``GridSearchCV`` (5-fold, scoring
  negative MAPE, ``n_jobs=-1``) over ``Ridge(alpha in 0.1..10 step 0.1)`` and ``SVR(rbf, gamma='auto',
  epsilon=0, C in 1..100)``, the better of the two by CV score kept;
- inner search: pymoo ``NSGA2(pop_size=50, IntegerRandomSampling(), SBX(prob=0.9, eta=15, vtype=float,
  RoundingRepair()), PM(prob=0.02, eta=20, vtype=float, RoundingRepair()), eliminate_duplicates=True)`` run for
  ``int(inner_evaluations / 50)`` generations (``LINAS_INNERLOOP_EVALS['ofa_mbv3_...'] = 20000``: 400) on
  (-predicted top-1, predicted latency), seeded with the run's seed (the same seed every loop, so every loop starts
  from the same random inner population; its warm-start argument is never used: ``type(x) == 'numpy.ndarray'``
  is always False);
- selection: the inner search's final population (``results.pop``, all 50 survivors of rank-and-crowding, not only
  its first front) is the next batch validated, whether or not a network was validated before;
- budget: ``round(num_evals / population)`` loops of ``population`` validations each.

Budget. By default the run goes on until ``--budget`` distinct networks (linas's canonical configs) are
validated, the accounting of linas's runner (which looks up a network validated before at no cost; the imported
run then has exactly ``--budget`` validations, like ours): DyNAS-T's loop runs unchanged and is stopped right
after that validation (or after 10 loops in a row without a new network: "exhausted"). ``--count-repeats`` uses
DyNAS-T's own accounting instead (``num_evals = budget``: every validation call counts, repeats included); the
imported run then has fewer than ``--budget`` validations. Either way the JSON records both counts.

What is DyNAS-T's code and what is not. DyNAS-T's files are not modified. Used as they are: ``LINAS.search``,
``LINAS.train_predictors``, ``PredictorManager``, ``Predictor``, ``OFAMobileNetV3Encoding``,
``EvaluationInterfaceOFAMobileNetV3`` (validation and predictor mode, CSV writing), ``EvolutionaryMultiObjective``,
``EvolutionaryManager`` (``configure_nsga2``, ``run_search``), ``SUPERNET_PARAMETERS``, ``get_csv_header``.
Replaced, in a subclass of ``LINAS`` created here:

- ``_init_search``: builds the validation runner below (instead of OFA's ImageNet runner) and DyNAS-T's own
  ``EvaluationInterfaceOFAMobileNetV3`` on it, whose ``eval_subnet`` is wrapped to count validations and stop
  at the budget;
- ``init_supernet``: DyNAS-T's encoding class, whose ``random_sample`` hands out linas's initial population
  (``linas.strategies.base.initial_population(space, seed, 50)``, shared by all of linas's strategies) before
  falling back to its own random sampling;
- ``verify_measurement_types``: DyNAS-T's, then its metric lists sorted (DyNAS-T passes them through ``set()``,
  whose order changes with ``PYTHONHASHSEED``, and the order is the column order of the inner NSGA-II);
- ``train_predictors``: DyNAS-T's, plus a record of the regressor it chose per loop.

``OFARunner`` (the runner ``LINAS.search`` builds for predictor mode, which loads OFA's pretrained supernet) is
replaced in ``dynast.search.search_tactic``'s namespace, for the duration of a run, by a subclass whose
``__init__`` loads nothing and whose ``validate_top1``/``measure_latency``/``validate_macs_params`` call linas's
evaluator; its ``estimate_*`` methods (predictor mode) are DyNAS-T's. ``LINAS_INNERLOOP_EVALS`` is replaced
there by a copy with ``--inner-evaluations`` for the supernet.

Stand-ins. ``dynast/__init__.py`` imports every supernet's runner at import time. Modules missing here get an
empty stand-in in ``sys.modules`` (a package whose attributes are empty classes), used only by supernets this
benchmark never builds: ``fairseq`` (Transformer LT), ``torchprofile`` (MACs of torch models) and ``numba``
(pymoo's AGE-MOEA; its ``jit`` is the identity). ``transformers`` always gets one: DyNAS-T 1.6.0's BERT code
imports ``transformers.data.processors``, gone from current releases. torch is needed for real
(``search_tactic`` imports ``torch.distributed``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "experiments" / "configs" / "linas_ehvi_synthetic.yaml"
LABEL = "dynast_linas"
SUPERNET = "ofa_mbv3_d234_e346_k357_w1.0"
DYNAST_VERSION = "1.6.0"
GET_DYNAST = ("pip install dynast==1.6.0 --no-deps, or give --dynast-path DIR (the folder that holds the "
              "unpacked wheel's dynast/ package, e.g. from pip download dynast==1.6.0 --no-deps)")
#: linas objective -> DyNAS-T metric (DyNAS-T maximizes accuracy_top1 and minimizes latency).
METRICS = {"top1": "accuracy_top1", "latency": "latency"}
DIRECTIONS = {"top1": "max", "latency": "min"}
#: Third-party modules that get an empty stand-in when missing, and those that always get one.
STAND_IN_IF_MISSING = ("fairseq", "torchprofile", "numba")
STAND_IN_ALWAYS = ("transformers",)
#: Loops in a row without a new network after which a run is declared exhausted.
STALE_LOOPS = 10
CSV_NAME, JSON_NAME = "dynast_results.csv", "dynast_run.json"


class BenchError(Exception):
    """A problem reported as one line, exit status 2."""


# ----------------------------------------------------------------------------- importing DyNAS-T
class _StandInModule(types.ModuleType):
    """An empty package: lowercase attributes are stand-in submodules, others empty classes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name[:1].islower():
            return importlib.import_module(f"{self.__name__}.{name}")
        cls = type(name, (), {"__init__": lambda self, *a, **k: None, "__module__": self.__name__})
        setattr(self, name, cls)
        return cls


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = frozenset(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        module.__file__ = None  # ctypes.cdll.LoadLibrary(fairseq.libbleu.__file__) then loads nothing new
        return module

    def exec_module(self, module) -> None:
        pass


def dynast_package_dir(dynast_path: str | Path | None) -> Path:
    """The ``dynast`` package folder: under ``dynast_path`` (or that folder itself), else the installed one."""
    if dynast_path is not None:
        p = Path(dynast_path).expanduser()
        for candidate in (p / "dynast", p):
            if (candidate / "__init__.py").is_file() and (candidate / "search" / "search_tactic.py").is_file():
                return candidate.resolve()
        raise BenchError(f"--dynast-path {dynast_path}: no dynast/ package there; {GET_DYNAST}")
    spec = importlib.util.find_spec("dynast")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"DyNAS-T is not installed: {GET_DYNAST}")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


@contextlib.contextmanager
def _keep_root_logger():
    """dynast.utils replaces the root logger's handlers and level when imported; put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _package_shim(package_dir: Path) -> None:
    """Make ``dynast`` importable from ``package_dir`` without running ``dynast/__init__.py`` (which only
    re-exports ``DyNAS`` and imports every supernet's runner); its submodules import as usual."""
    existing = sys.modules.get("dynast")
    if existing is not None:
        locations = [str(Path(p).resolve()) for p in getattr(existing, "__path__", [])]
        if str(package_dir) not in locations:
            raise BenchError(f"another DyNAS-T is already imported from {locations}")
        return
    spec = importlib.machinery.ModuleSpec("dynast", None, is_package=True)
    spec.submodule_search_locations = [str(package_dir)]
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(package_dir / "__init__.py")
    sys.modules["dynast"] = module


def supernet_parameters(package_dir: Path) -> dict[str, Any]:
    """DyNAS-T's ``SUPERNET_PARAMETERS[SUPERNET]``, read from its registry's source (importing the registry
    imports every supernet's runner)."""
    source = (package_dir / "supernetwork" / "supernetwork_registry.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SUPERNET_PARAMETERS" for t in node.targets):
            return ast.literal_eval(node.value)[SUPERNET]
    raise BenchError(f"{package_dir}: no SUPERNET_PARAMETERS in supernetwork/supernetwork_registry.py")


def load_encoding(dynast_path: str | Path | None = None):
    """DyNAS-T's OFA MobileNetV3 encoding, built as ``LINAS`` builds it, importing no torch:
    returns ``(encoding, version, package_dir)``."""
    package_dir = dynast_package_dir(dynast_path)
    _package_shim(package_dir)
    try:
        with _keep_root_logger():
            version = importlib.import_module("dynast.version").__version__
            ofa_encoding = importlib.import_module("dynast.supernetwork.image_classification.ofa.ofa_encoding")
    except ImportError as exc:
        raise BenchError(f"cannot import DyNAS-T's encoding from {package_dir}: {exc}") from None
    if version != DYNAST_VERSION:
        raise BenchError(f"{package_dir}: DyNAS-T {version}, this benchmark drives {DYNAST_VERSION}'s code: "
                         f"{GET_DYNAST}")
    encoding = ofa_encoding.OFAMobileNetV3Encoding(param_dict=supernet_parameters(package_dir), seed=0)
    return encoding, version, package_dir


def load_dynast(dynast_path: str | Path | None = None) -> types.SimpleNamespace:
    """DyNAS-T's search code (``search_tactic`` and what it uses), with stand-ins for missing modules."""
    _, version, package_dir = load_encoding(dynast_path)
    if importlib.util.find_spec("torch") is None:
        raise BenchError("DyNAS-T's search code needs torch (its search_tactic imports torch.distributed): "
                         "pip install torch")
    stand_ins = [m for m in STAND_IN_IF_MISSING if importlib.util.find_spec(m) is None] + list(STAND_IN_ALWAYS)
    for name in STAND_IN_ALWAYS:  # a real one imported before would be used by DyNAS-T's BERT code
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            if not isinstance(sys.modules[key], _StandInModule):
                del sys.modules[key]
    sys.meta_path.insert(0, _StandInFinder(stand_ins))
    if "numba" in stand_ins:
        import numpy as np

        numba = importlib.import_module("numba")

        def jit(*args, **kwargs):
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda f: f

        numba.jit = numba.njit = jit
        numba.intp, numba.boolean, numba.float64 = np.intp, np.bool_, np.float64
    try:
        with _keep_root_logger(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            search_tactic = importlib.import_module("dynast.search.search_tactic")
            registry = importlib.import_module("dynast.supernetwork.supernetwork_registry")
            ofa_interface = importlib.import_module("dynast.supernetwork.image_classification.ofa.ofa_interface")
            encoding_module = importlib.import_module("dynast.supernetwork.image_classification.ofa.ofa_encoding")
            evolutionary = importlib.import_module("dynast.search.evolutionary")
    except Exception as exc:  # noqa: BLE001 - whatever DyNAS-T's imports raise is one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BenchError(f"cannot import DyNAS-T's search code from {package_dir}: {type(exc).__name__}"
                         f"{': ' + text if text else ''}") from None
    if registry.SUPERNET_PARAMETERS[SUPERNET] != supernet_parameters(package_dir):
        raise BenchError(f"{package_dir}: SUPERNET_PARAMETERS differ from its source")
    return types.SimpleNamespace(search_tactic=search_tactic, registry=registry, ofa_interface=ofa_interface,
                                 encoding=encoding_module, evolutionary=evolutionary, version=version,
                                 package_dir=package_dir, stand_ins=stand_ins)


# ----------------------------------------------------------------------------- encodings
def dynast_params(config: Mapping[str, Any]) -> dict[str, list[int]]:
    """DyNAS-T's parameter dict ``{'ks': [20], 'e': [20], 'd': [5]}`` of a linas ``ofa_mbv3`` config."""
    return {"ks": [int(config[f"ks_{i}"]) for i in range(20)], "e": [int(config[f"e_{i}"]) for i in range(20)],
            "d": [int(config[f"d_{s}"]) for s in range(5)]}


def to_dynast_vector(config: Mapping[str, Any], encoding) -> list[int]:
    """DyNAS-T's pymoo vector of a linas config (``encoding.translate2pymoo``)."""
    return [int(v) for v in encoding.translate2pymoo(dynast_params(config))]


def subnet_to_config(subnet: Mapping[str, Any], space) -> dict[str, Any]:
    """linas's canonical config of a DyNAS-T subnet dict (``{'wid': None, 'ks', 'e', 'd', 'r'}`` as its OFA
    interface builds it, or ``translate2param``'s ``{'ks', 'e', 'd'}``)."""
    from linas.networks import to_config

    if subnet.get("wid") is not None:
        raise BenchError(f"DyNAS-T subnet with width {subnet['wid']!r}: the ofa_mbv3 space has none")
    return to_config({k: v for k, v in subnet.items() if k != "wid"}, space)


def to_linas_config(vector: Sequence[Any], encoding, space) -> dict[str, Any]:
    """linas's canonical config of DyNAS-T's pymoo vector (``encoding.translate2param``)."""
    return subnet_to_config(encoding.translate2param(list(vector)), space)


# ----------------------------------------------------------------------------- experiment
def load_setup(config_path: str | Path):
    """The experiment config, its space and evaluator; checks they fit DyNAS-T's OFA MobileNetV3 LINAS."""
    from linas.config import load_experiment
    from linas.evaluator import make_evaluator
    from linas.spaces import get_space

    config = load_experiment(config_path)
    if config.space.name != "ofa_mbv3" or config.space.options.get("resolutions"):
        raise BenchError(f"{config_path}: DyNAS-T's OFA MobileNetV3 search needs space ofa_mbv3 without "
                         f"resolutions (got {config.space.name} {dict(config.space.options)})")
    names = [o.name for o in config.objectives]
    if sorted(names) != sorted(METRICS):
        raise BenchError(f"{config_path}: objectives must be {' and '.join(METRICS)} (DyNAS-T's accuracy_top1 "
                         f"and latency), not {', '.join(names)}")
    if config.constraints:
        raise BenchError(f"{config_path}: DyNAS-T's LINAS has no constraints; use a config without them")
    space = get_space(config.space.name, **config.space.options)
    evaluator = make_evaluator(config.evaluator.name, space, config.evaluator.options)
    declared = {m.name: m.direction for m in evaluator.metrics}
    for name, direction in DIRECTIONS.items():
        if declared.get(name) != direction:
            raise BenchError(f"evaluator '{config.evaluator.name}' must measure {name} ({direction}imize)")
    return config, space, evaluator


class _BudgetSpent(Exception):
    pass


class _Exhausted(Exception):
    pass


class Accounting:
    """Counts DyNAS-T's validation calls and the distinct (canonical) networks among them; ends the search
    at the budget."""

    def __init__(self, space, encoding, budget: int, population: int, count_repeats: bool) -> None:
        self.space, self.encoding, self.budget = space, encoding, budget
        self.population, self.count_repeats = population, count_repeats
        self.calls_wanted = round(budget / population) * population  # DyNAS-T's num_loops x population
        self.calls = 0
        self.seen: set[str] = set()
        self.since_new = 0

    def key(self, vector: Sequence[Any]) -> str:
        config = to_linas_config(vector, self.encoding, self.space)
        return self.space.key(self.space.from_config(config))

    def before(self, vector: Sequence[Any]) -> None:
        key = self.key(vector)
        if key in self.seen:
            self.since_new += 1
            if not self.count_repeats and self.since_new >= STALE_LOOPS * self.population:
                raise _Exhausted
        else:
            self.seen.add(key)
            self.since_new = 0
        self.calls += 1

    def after(self) -> None:
        if self.count_repeats:
            if self.calls >= self.calls_wanted:
                raise _BudgetSpent  # DyNAS-T would fit and search once more, and validate nothing of it
        elif len(self.seen) >= self.budget:
            raise _BudgetSpent


def make_search_class(dyn: types.SimpleNamespace, measure: Callable[[Mapping[str, Any]], dict[str, float]],
                      initial_vectors: list[list[int]], accounting: Accounting, loops: list[dict]):
    """``LINAS`` with linas's evaluator and paired initial population (see the module docstring)."""
    st = dyn.search_tactic
    base_runner = dyn.ofa_interface.OFARunner

    class LinasEvaluatorRunner(base_runner):
        """DyNAS-T's ``OFARunner`` with linas's evaluator in place of OFA's ImageNet supernet: predictor mode
        (``estimate_*``) is DyNAS-T's own code; validations are linas's measurements."""

        def __init__(self, supernet: str, dataset_path: str | None = None, acc_predictor=None, macs_predictor=None,
                     latency_predictor=None, params_predictor=None, batch_size: int = 128,
                     eval_batch_size: int = 128, dataloader_workers: int = 4, device: str = "cpu",
                     test_fraction: float = 1.0, verbose: bool = False) -> None:
            # OFARunner.__init__ without ofa_net(pretrained=True) and the ImageNet loader.
            self.supernet = supernet
            self.acc_predictor, self.macs_predictor = acc_predictor, macs_predictor
            self.latency_predictor, self.params_predictor = latency_predictor, params_predictor
            self.batch_size, self.eval_batch_size, self.device = batch_size, eval_batch_size, device
            self.test_fraction, self.dataset_path = test_fraction, dataset_path
            self.dataloader_workers, self.verbose = dataloader_workers, verbose

        def validate_top1(self, subnet_cfg, device=None) -> float:
            return measure(subnet_cfg)["top1"]

        def validate_macs_params(self, subnet_cfg, device=None):
            m = measure(subnet_cfg)  # DyNAS-T writes counts; linas's evaluators give millions
            return m.get("macs", 0.0) * 1e6, m.get("params", 0.0) * 1e6

        def measure_latency(self, subnet_cfg, warmup_steps=10, measure_steps=50, device=None):
            return measure(subnet_cfg)["latency"], 0.0

    class PairedStartEncoding(dyn.encoding.OFAMobileNetV3Encoding):
        """DyNAS-T's encoding; ``random_sample`` gives linas's initial population first."""

        pending: list[list[int]] = []

        def random_sample(self):
            if self.pending:
                return list(self.pending.pop(0))
            return super().random_sample()

    class DynastLinas(st.LINAS):
        def verify_measurement_types(self):
            super().verify_measurement_types()
            self.optimization_metrics = sorted(self.optimization_metrics)
            self.measurements = sorted(self.measurements)

        def init_supernet(self):
            self.supernet_manager = PairedStartEncoding(param_dict=st.SUPERNET_PARAMETERS[self.supernet],
                                                        seed=self.seed)
            self.supernet_manager.pending = [list(v) for v in initial_vectors]

        def _init_search(self):
            self.runner_validate = LinasEvaluatorRunner(
                supernet=self.supernet, dataset_path=self.dataset_path, batch_size=self.batch_size,
                eval_batch_size=self.eval_batch_size, device=self.device,
                dataloader_workers=self.dataloader_workers, test_fraction=self.test_fraction)
            self.validation_interface = st.EVALUATION_INTERFACE[self.supernet](
                evaluator=self.runner_validate, manager=self.supernet_manager,
                optimization_metrics=self.optimization_metrics, measurements=self.measurements,
                csv_path=self.results_path)
            self.validation_interface.format_csv(self.csv_header)
            validate = self.validation_interface.eval_subnet
            self._loop_started = time.perf_counter()

            def eval_subnet(x):
                if loops and "inner_search_s" not in loops[-1]:  # the first validation after an inner search
                    loops[-1]["inner_search_s"] = round(time.perf_counter() - self._loop_started, 3)
                accounting.before(x)
                out = validate(x)
                accounting.after()
                return out

            self.validation_interface.eval_subnet = eval_subnet

        def train_predictors(self, results_path=None):
            started = time.perf_counter()
            super().train_predictors(results_path)
            entry: dict[str, Any] = {"loop": len(loops) + 1, "validation_calls": accounting.calls,
                                     "distinct_networks": len(accounting.seen),
                                     "fit_s": round(time.perf_counter() - started, 3), "predictors": {}}
            for metric in self.optimization_metrics:
                predictor = self.predictor_dict[metric]
                best = predictor.searchers[predictor.best_index]
                entry["predictors"][metric] = {
                    "chosen": type(best.best_estimator_).__name__,
                    "params": {k: float(v) for k, v in best.best_params_.items()},
                    "cv_mape": float(-best.best_score_),
                    "cv_mape_other": float(-predictor.searchers[1 - predictor.best_index].best_score_)}
            loops.append(entry)
            self._loop_started = time.perf_counter()

    return DynastLinas, LinasEvaluatorRunner


@contextlib.contextmanager
def patched(module: types.ModuleType, **values: Any):
    """Set module attributes for the duration of the block."""
    saved = {k: getattr(module, k) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def import_run(import_csv_path: Path, config_path: Path, output: Path, label: str, seed: int):
    """:func:`linas.importing.import_csv` of the config, with its output set to ``output``."""
    import yaml

    from linas.config_io import load_yaml
    from linas.importing import import_csv

    data = load_yaml(config_path)
    data["output"] = str(output)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(config_path).name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return import_csv(import_csv_path, path, label, seed)


def run_seed(dyn: types.SimpleNamespace, config, config_path: Path, space, evaluator, seed: int, budget: int,
             population: int, inner_evaluations: int, count_repeats: bool, output: Path, label: str,
             verbose: bool) -> dict[str, Any] | None:
    from linas.runner import package_versions
    from linas.strategies.base import initial_population

    run_dir = output / label / f"seed{seed}"
    if (run_dir / "archive.sqlite").exists():
        print(f"seed {seed}: {run_dir} holds a run already; skipped (delete the folder to run it again)")
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    csv_path = run_dir / CSV_NAME
    probe = dyn.encoding.OFAMobileNetV3Encoding(param_dict=dyn.registry.SUPERNET_PARAMETERS[SUPERNET], seed=0)
    initial = initial_population(space, seed, population)
    initial_vectors = [to_dynast_vector(space.to_config(g), probe) for g in initial]
    accounting = Accounting(space, probe, budget, population, count_repeats)
    cache: dict[str, dict[str, float]] = {}
    timing = {"evaluation_s": 0.0}

    def measure(subnet_cfg: Mapping[str, Any]) -> dict[str, float]:
        config_ = subnet_to_config(subnet_cfg, space)
        key = space.key(space.from_config(config_))
        if key not in cache:  # the evaluator is deterministic per network: a repeat measures the same
            started = time.perf_counter()
            cache[key] = dict(evaluator.evaluate_one(config_))
            timing["evaluation_s"] += time.perf_counter() - started
        return cache[key]

    loops: list[dict] = []
    search_class, runner_class = make_search_class(dyn, measure, initial_vectors, accounting, loops)
    st = dyn.search_tactic
    inner = {**st.LINAS_INNERLOOP_EVALS, SUPERNET: int(inner_evaluations)}
    # DyNAS-T's own accounting runs round(num_evals / population) loops; ours runs until the budget of
    # distinct networks is validated (enough loops, ended by Accounting).
    num_evals = budget if count_repeats else population * max(budget, 1) * (STALE_LOOPS + 1)
    started_at = time.time()
    started = time.perf_counter()
    status = "complete"
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())  # pymoo's dots
    with patched(st, OFARunner=runner_class, LINAS_INNERLOOP_EVALS=inner), quiet:
        search = search_class(supernet=SUPERNET, optimization_metrics=["latency", "accuracy_top1"],
                              measurements=["latency", "macs", "params", "accuracy_top1"], num_evals=num_evals,
                              results_path=str(csv_path), population=population, seed=seed, verbose=verbose)
        try:
            search.search()
            status = "ended"  # DyNAS-T's loops ran out before the budget
        except _BudgetSpent:
            pass
        except _Exhausted:
            status = "exhausted"
    wall = time.perf_counter() - started
    with csv_path.open(newline="") as f:
        n_rows = max(sum(1 for _ in csv.reader(f)) - 1, 0)
    result = import_run(csv_path, config_path, output, label, seed)
    from linas.report import load_run

    run = load_run(result.run_dir)
    hv = run.hv
    run.archive.close()
    record = {
        "tool": "DyNAS-T", "dynast_version": dyn.version, "dynast_path": str(dyn.package_dir),
        "supernet": SUPERNET, "seed": seed, "label": label, "experiment": config.name,
        "config": str(config_path), "evaluator": evaluator.identity, "status": status,
        "options": {"population": population, "budget": budget,
                    "budget_counts": "validation calls, repeats included (DyNAS-T)" if count_repeats
                    else "distinct networks (linas)",
                    "num_evals": num_evals, "inner_evaluations": int(inner_evaluations),
                    "inner_generations": int(int(inner_evaluations) / population),
                    "inner_search": {"algorithm": "pymoo NSGA2", "pop_size": population,
                                     "sampling": "IntegerRandomSampling", "crossover": "SBX(prob=0.9, eta=15)",
                                     "mutation": "PM(prob=0.02, eta=20)", "repair": "RoundingRepair",
                                     "eliminate_duplicates": True, "seed": seed},
                    "optimization_metrics": list(search.optimization_metrics),
                    "measurements": list(search.measurements),
                    "initial_population": "linas.strategies.base.initial_population(space, seed, population)"},
        "stand_ins": list(dyn.stand_ins),
        "validation_calls": accounting.calls, "distinct_networks": len(accounting.seen),
        "repeated_validations": accounting.calls - len(accounting.seen), "csv_rows": n_rows,
        "imported": {"run_dir": str(result.run_dir), "validated": result.n_validated,
                     "repeats_skipped": result.n_duplicates, "failed": result.n_failed},
        "hypervolume": {"final": float(result.hypervolume),
                        "after_population": float(hv[min(population, len(hv)) - 1]) if len(hv) else 0.0,
                        **{f"after_{n}": float(hv[n - 1]) for n in (100, 200, 300) if len(hv) >= n}},
        "wall_time_s": round(wall, 3), "evaluation_s": round(timing["evaluation_s"], 3),
        "loops": loops, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at)),
        "command": " ".join(shlex.quote(a) for a in sys.argv), "versions": package_versions(),
        "environment": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "LOKY_MAX_CPU_COUNT", "PYTHONHASHSEED")
                        if k in os.environ},
    }
    (run_dir / JSON_NAME).write_text(json.dumps(record, indent=2) + "\n")
    print(f"seed {seed}: {result.n_validated} networks validated ({accounting.calls} DyNAS-T validations, "
          f"{accounting.calls - len(accounting.seen)} repeats), {len(loops)} predictor fits, "
          f"HV {result.hypervolume:.4f}, {wall:.1f} s{'' if status == 'complete' else ', ' + status} -> {run_dir}")
    return record


# ----------------------------------------------------------------------------- CLI
def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


_positive, _seed = _at_least(1), _at_least(0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_dynast_linas.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment config (default %(default)s)")
    p.add_argument("--seeds", type=_seed, nargs="+", help="seeds (default: the config's)")
    p.add_argument("--budget", type=_positive, help="validations per run (default: the config's)")
    p.add_argument("--population", type=_positive, default=50,
                   help="DyNAS-T's population: the initial one and each batch (default %(default)s, as linas's)")
    p.add_argument("--inner-evaluations", type=_positive, default=20000,
                   help="predictions per inner NSGA-II (default %(default)s: DyNAS-T's LINAS_INNERLOOP_EVALS "
                        "for OFA MobileNetV3)")
    p.add_argument("--count-repeats", action="store_true",
                   help="DyNAS-T's accounting: every validation call counts, networks validated before included "
                        "(default: the budget counts distinct networks, as linas's runner does)")
    p.add_argument("--output", help="experiment output folder; runs go to OUTPUT/LABEL/seed<k> "
                                    "(default: the config's output, runs/linas_ehvi_synthetic)")
    p.add_argument("--label", default=LABEL, help="name of the runs in comparisons (default %(default)s)")
    p.add_argument("--dynast-path", help="folder holding DyNAS-T 1.6.0's dynast/ package (default: the installed one)")
    p.add_argument("--jobs", type=_positive,
                   help="processes of DyNAS-T's GridSearchCV(n_jobs=-1) (sets LOKY_MAX_CPU_COUNT; default: all cores)")
    p.add_argument("--verbose", action="store_true", help="DyNAS-T's log and pymoo's progress dots")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from linas.errors import LinasError
    except ImportError:
        print("bench_dynast_linas: error: linas is not installed (pip install -e . in the repository)", file=sys.stderr)
        return 2
    try:
        if args.jobs:
            os.environ["LOKY_MAX_CPU_COUNT"] = str(args.jobs)
        config_path = Path(args.config)
        config, space, evaluator = load_setup(config_path)
        seeds = args.seeds if args.seeds is not None else list(config.seeds)
        if len(set(seeds)) != len(seeds):
            raise BenchError("--seeds are repeated")
        budget = args.budget or config.budget
        if args.inner_evaluations < args.population:
            raise BenchError(f"--inner-evaluations ({args.inner_evaluations}) must be at least --population "
                             f"({args.population}): DyNAS-T runs int(inner_evaluations / population) generations")
        if args.population < 2:
            raise BenchError("--population must be at least 2")
        if args.label in {s.run_label for s in config.strategies}:
            raise BenchError(f"--label '{args.label}' is a strategy of {config_path}; name the runs otherwise")
        output = Path(args.output if args.output else config.output).expanduser()
        dyn = load_dynast(args.dynast_path)
        if args.verbose:
            logging.basicConfig(level=logging.INFO)
        else:
            logging.getLogger().setLevel(logging.WARNING)
        records = []
        for seed in seeds:
            record = run_seed(dyn, config, config_path, space, evaluator, seed, budget, args.population,
                              args.inner_evaluations, args.count_repeats, output, args.label, args.verbose)
            if record is not None:
                records.append(record)
        if records:
            finals = [r["hypervolume"]["final"] for r in records]
            mean = sum(finals) / len(finals)
            print(f"{len(records)} run(s): final HV mean {mean:.4f}, wall {sum(r['wall_time_s'] for r in records):.1f} s"
                  f"; compare with: linas compare {output} -o {output / 'comparison'}")
        return 0
    except (BenchError, LinasError) as exc:
        print(f"bench_dynast_linas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_dynast_linas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
