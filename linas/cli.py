"""The ``linas`` command."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from pathlib import Path

from linas.errors import LinasError

EPILOG = "Run 'linas COMMAND --help' for the options of a command."


def _search(args: argparse.Namespace) -> int:
    from linas.config import load_experiment
    from linas.experiment import Experiment

    overrides = {}
    if args.output:
        overrides["output"] = args.output
    if args.seeds:
        overrides["seeds"] = args.seeds
    if args.budget is not None:
        overrides["budget"] = _positive_budget(args.budget)
    config = load_experiment(args.config, overrides)
    if args.strategies:
        config = _only_strategies(config, args.strategies)
    experiment = Experiment.build(config)
    print(f"{config.name}: {len(config.strategies)} strategies x {len(config.seeds)} seeds, "
          f"budget {config.budget} validations each -> {config.output}")
    experiment.run(progress=not args.no_progress)
    print(f"compare them with: linas compare {config.output}")
    return 0


def _only_strategies(config, labels: list[str]):
    """The config with only the strategies whose labels are given (in the config's order)."""
    known = [s.run_label for s in config.strategies]
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise LinasError(f"--strategies: {', '.join(unknown)} not in the config '{config.name}'; "
                         f"its strategies are {', '.join(known)}")
    return config.model_copy(update={"strategies": [s for s in config.strategies if s.run_label in labels]})


def _report(args: argparse.Namespace) -> int:
    from linas.report import best_under_constraints, load_run, report_run

    out = _output_dir(args.output or Path(args.run_dir) / "report")
    with load_run(args.run_dir) as run:
        for p in report_run(run, out):
            print(p)
        print(f"{run.label} seed {run.seed}: {len(run.hv)} validated, final HV {run.final_hv:.4f}")
        constrained = best_under_constraints([run])
        if len(constrained):
            print(constrained.drop(columns=["strategy", "found", "best", "worst"]).to_string(index=False))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from linas.experiment import run_dirs
    from linas.report import compare_runs, load_run, report_comparison, unfinished

    budget = None if args.budget is None else _positive_budget(args.budget)
    out = _output_dir(args.output or "comparison")
    with contextlib.ExitStack() as stack:
        runs = [stack.enter_context(load_run(p, budget)) for p in run_dirs(args.run_dirs)]
        for line in unfinished(runs, budget):
            print(f"linas: warning: {line}", file=sys.stderr)
        comparison = compare_runs(runs, args.targets, args.reference)
        report_comparison(runs, out, comparison=comparison)
    print(comparison.final.to_string(index=False))
    print()
    print(comparison.reach.to_string(index=False))
    if len(comparison.constrained):
        print()
        print(comparison.constrained.to_string(index=False))
    print(f"plots and tables written to {out}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from linas.evaluate_network import evaluate_networks

    return evaluate_networks(args.config, args.network)


def _import(args: argparse.Namespace) -> int:
    from linas.importing import import_csv

    columns = {}
    for item in args.metric or []:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise LinasError(f"--metric takes NAME=COLUMN, not {item!r}")
        columns[name] = column
    result = import_csv(args.csv, args.config, args.label, args.seed, columns, args.config_column)
    print(f"{result.run_dir}: {result.n_validated} validated, {result.n_failed} failed, "
          f"{result.n_duplicates} repeated networks skipped (of {result.n_rows} rows), final HV {result.hypervolume:.4f}")
    return 0


def _positive_budget(budget: int) -> int:
    if budget < 1:
        raise LinasError(f"--budget must be a positive number of validations, not {budget}")
    return budget


def _output_dir(path: str | Path) -> Path:
    """Where a command writes its files: refused at once when it exists but is no folder."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise LinasError(f"{out}: exists and is not a directory; name a folder with -o")
    return out


def _plugin(registry_name: str):
    def run(args: argparse.Namespace) -> int:
        from linas import extensions
        from linas.config_io import load_yaml

        settings = load_yaml(args.config)
        name = settings.get("supernet")
        if not isinstance(name, str):
            raise LinasError(f"{args.config}: 'supernet' must name the supernet (e.g. supernet: ofa_mbv3)")
        command = getattr(extensions, registry_name).get(name)
        output = settings.get("output")
        if getattr(args, "force", None) is False and isinstance(output, str) and Path(output).expanduser().is_file():
            # A rebuilt table would change the latencies of a search that resumes with it.
            print(f"linas: {output} exists, kept (searches resume with the same latencies); "
                  "--force measures it again", file=sys.stderr)
            return 0
        command(settings, Path(args.config))
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linas", description="Multi-objective NAS with learned predictors.",
                                     epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("search", help="run (or resume) the searches of an experiment config",
                       description="Run every strategy and seed of an experiment config. Runs that were "
                                   "interrupted resume where they stopped.")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--output", help="override the config's output directory")
    p.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    p.add_argument("--budget", type=int, help="override the config's validation budget")
    p.add_argument("--strategies", nargs="+", metavar="LABEL",
                   help="run only these strategies of the config (by label)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)

    p = sub.add_parser("report", help="plots and CSV of one run",
                       description="Write the HV curve, the Pareto front, the evaluations CSV and the "
                                   "predictor diagnostics of one run.")
    p.add_argument("run_dir", help="a run directory (holds archive.sqlite)")
    p.add_argument("-o", "--output", help="where to write (default RUN_DIR/report)")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="compare strategies over seeds",
                       description="HV curves (mean and 95%% CI per strategy), Pareto fronts, validations "
                                   "needed to reach target HVs and Wilcoxon tests over paired seeds.")
    p.add_argument("run_dirs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("-o", "--output", help="where to write (default ./comparison)")
    p.add_argument("--targets", type=float, nargs="+", help="target hypervolumes for the table")
    p.add_argument("--budget", type=int, help="compare the runs as they stood after this many validations, "
                                              "or this much budget spent where runs have low-fidelity "
                                              "evaluations (default: all of each run)")
    p.add_argument("--reference", metavar="STRATEGY", help="the strategy speed-ups are measured for "
                                                           "(default: the first)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("evaluate", help="metrics of one network as one JSON line",
                       description="Evaluate one network (a JSON or YAML file: the space's variable names, "
                                   "OFA's {ks, e, d, r} or HAT's SubTransformer YAML; a list: one line each) "
                                   "with the space and evaluator of an experiment config.")
    p.add_argument("config", help="experiment YAML (its space and evaluator)")
    p.add_argument("network", help="JSON or YAML file of the network")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("import", help="outside results (a CSV) as a run, for linas compare",
                       description="Store a CSV of networks and metrics, in evaluation order (e.g. DyNAS-T's "
                                   "results CSV), as the run OUTPUT/LABEL/seedK of an experiment config, with "
                                   "its hypervolume curve in the config's normalization.")
    p.add_argument("csv", help="CSV: one row per evaluation, in order")
    p.add_argument("--config", required=True, help="experiment YAML (space, objectives, bounds, output)")
    p.add_argument("--label", required=True, help="name of the imported strategy in comparisons")
    p.add_argument("--seed", type=int, required=True, help="seed to pair the run with")
    p.add_argument("--metric", action="append", metavar="NAME=COLUMN",
                   help="column of a metric (repeatable; default: columns named as the metrics, DyNAS-T's headers)")
    p.add_argument("--config-column", help="column holding each network (default: Sub-network, config, subnet, "
                                           "network or arch; else one column per variable)")
    p.set_defaults(func=_import)

    p = sub.add_parser("train-supernet", help="train a supernet from a YAML config",
                       description="Train the supernet named by the config's 'supernet' key.")
    p.add_argument("config", help="training YAML")
    p.set_defaults(func=_plugin("trainers"))

    p = sub.add_parser("build-lut", help="build a latency lookup table on this device",
                       description="Measure the latency lookup table of the supernet named by the config's "
                                   "'supernet' key on the current device.")
    p.add_argument("config", help="lookup-table YAML")
    p.add_argument("--force", action="store_true", help="measure again even if the table ('output') exists")
    p.set_defaults(func=_plugin("lut_builders"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LinasError as exc:
        print(f"linas: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a file or database problem no command anticipated
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"linas: error: {where}{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("linas: interrupted; everything validated so far is saved - run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
