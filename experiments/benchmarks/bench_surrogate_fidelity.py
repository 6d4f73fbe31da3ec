"""How closely a surrogate benchmark follows the measurements it was fitted to.

Builds the ``surrogate`` evaluator of a surrogate experiment config and reports, per
objective, the cross-validated Kendall tau and R^2 of its model on the measured networks
(5 folds), with the number of networks it was fitted to.

    python experiments/benchmarks/bench_surrogate_fidelity.py experiments/configs/surrogate_multi30k_hat.yaml

Writes results/<experiment>/surrogate_fidelity.json (the experiment the surrogate stands in for).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import write_result

from linas.config import load_experiment
from linas.evaluator import make_evaluator
from linas.spaces import get_space

RESULTS = Path(__file__).resolve().parents[2] / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a surrogate experiment config")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    config = load_experiment(args.config)
    if config.evaluator.name != "surrogate":
        parser.error(f"{args.config}: the evaluator is '{config.evaluator.name}', not 'surrogate'")
    space = get_space(config.space.name, **config.space.options)
    start = time.perf_counter()
    surrogate = make_evaluator("surrogate", space, config.evaluator.options)
    fit_s = time.perf_counter() - start
    fidelity = surrogate.fidelity(args.folds)
    target = config.name.removeprefix("surrogate_")
    path = write_result("surrogate_fidelity", {
        "benchmark": "cross-validated fidelity of the surrogate to the measured networks",
        "config": args.config, "source": config.evaluator.options["source"],
        "source_evaluator": surrogate.source_identity, "model": surrogate.kind, "measured_networks": surrogate.n_measured,
        "folds": args.folds, "fit_s": round(fit_s, 2), "fidelity": fidelity}, RESULTS / target)
    for name, values in fidelity.items():
        print(f"{name}: Kendall tau {values['kendall_tau']:.3f}, R^2 {values['r2']:.3f}")
    print(f"{surrogate.n_measured} measured networks -> {path}")


if __name__ == "__main__":
    main()
