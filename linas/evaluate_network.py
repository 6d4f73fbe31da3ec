"""``linas evaluate CONFIG.yaml NETWORK``: the metrics of one network, as one JSON line.

The experiment config names the space and the evaluator (with its options); NETWORK is a
JSON or YAML file in any format of :mod:`linas.networks` (the space's variable names,
OFA's ``{ks, e, d, r}``, HAT's SubTransformer YAML), or a list of such networks (one JSON
line each, in order). A network that does not fit the space stops everything with a
one-line error naming the variable (exit status 2); an evaluation that fails prints its
error (exit status 1).

    $ linas evaluate experiments/configs/ofa_imagenet_note10.yaml net.json
    {"top1": 79.86, "latency": 27.9, "macs": 262.1, "params": 5.6}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from linas.errors import ConfigError


def load_space_and_evaluator(config_path: str | Path):
    """The space and the (local) evaluator an experiment config names."""
    from linas.config import load_experiment
    from linas.evaluator import make_evaluator
    from linas.spaces import get_space

    config = load_experiment(config_path)
    space = get_space(config.space.name, **config.space.options)
    return config, space, make_evaluator(config.evaluator.name, space, config.evaluator.options)


def evaluate_networks(config_path: str | Path, network_path: str | Path, out=None) -> int:
    from linas.networks import read_network_file, to_config

    out = out or sys.stdout
    data = read_network_file(network_path)
    networks = data if isinstance(data, list) else [data]
    config, space, evaluator = load_space_and_evaluator(config_path)
    try:
        configs = []
        for i, net in enumerate(networks):
            try:
                configs.append(to_config(net, space))
            except ConfigError as exc:
                where = f"{network_path}" + (f" (network {i})" if isinstance(data, list) else "")
                raise ConfigError(f"{where}: {exc}") from None
        status = 0
        for i, c in enumerate(configs):
            outcome = evaluator.guarded(c, config.timeout)
            if outcome.ok:
                print(json.dumps(_plain(outcome.metrics)), file=out, flush=True)
            else:
                print(f"linas: evaluation of network {i} failed: {outcome.error}", file=sys.stderr)
                status = 1
        return status
    finally:
        evaluator.close()


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in metrics.items()}
