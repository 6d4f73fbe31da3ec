"""``linas import CSV --config CONFIG.yaml --label NAME --seed K``: outside results as a run.

A CSV of networks and their metrics, one row per evaluation in the order they were made
(a DyNAS-T results CSV, another tool's log, an ``evaluations.csv`` of ``linas report``),
becomes the run archive ``OUTPUT/NAME/seedK`` of the experiment config, with the
hypervolume after each row computed with the config's objectives, bounds and reference
point. ``linas compare OUTPUT`` then plots and tests it next to the config's own
strategies, with the same normalization.

Networks are read from, in this order of preference:

- ``--config-column COLUMN``, or a column named ``Sub-network`` (DyNAS-T), ``config``,
  ``subnet``, ``network`` or ``arch``: one network per cell, as JSON or as a Python literal
  (DyNAS-T writes ``{'ks': [...], 'e': [...], 'd': [...], 'r': [224]}``), in any format of
  :mod:`linas.networks`;
- otherwise the columns named as the space's variables (unused ones may be absent).

Metrics come from the columns named as the metrics, from ``--metric NAME=COLUMN``, or from
DyNAS-T's headers (``Top-1 Acc (%)`` -> ``top1``, ``Latency (ms)`` -> ``latency``,
``BLEU Score`` -> ``bleu``; ``MACs`` and ``Model Parameters`` are kept as ``macs`` and
``params`` in the units DyNAS-T wrote). A row whose objective value is empty, or whose
``status`` column says ``failed``, is stored as a failed evaluation; a network seen before
in the file is skipped (a run validates each network once) and counted.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linas.errors import ConfigError

CONFIG_COLUMNS = ("Sub-network", "config", "subnet", "network", "arch")
DYNAST_HEADERS = {"Top-1 Acc (%)": "top1", "Latency (ms)": "latency", "BLEU Score": "bleu",
                  "MACs": "macs", "Model Parameters": "params", "SST-2 Acc": "accuracy_sst2"}


@dataclass
class ImportResult:
    run_dir: Path
    n_rows: int
    n_validated: int
    n_failed: int
    n_duplicates: int
    hypervolume: float


def import_csv(csv_path: str | Path, config_path: str | Path, label: str, seed: int,
               metric_columns: Mapping[str, str] | None = None, config_column: str | None = None) -> ImportResult:
    from linas.archive import RunArchive
    from linas.config import load_experiment
    from linas.hypervolume import HypervolumeTracker, Normalizer
    from linas.networks import parse_network_text, to_config
    from linas.spaces import get_space

    config = load_experiment(config_path)
    if label in {s.run_label for s in config.strategies}:
        raise ConfigError(f"--label '{label}' is a strategy of {config_path}; name the imported run otherwise")
    space = get_space(config.space.name, **config.space.options)
    objectives = _objectives(config, space)
    header, rows = _read_csv(csv_path)
    columns = _metric_columns(header, objectives, metric_columns or {}, csv_path)
    network_column = config_column or next((c for c in CONFIG_COLUMNS if c in header), None)
    if config_column and config_column not in header:
        raise ConfigError(f"{csv_path}: no column '{config_column}'; columns: {', '.join(header)}")
    if network_column is None and not set(space.names) & set(header):
        raise ConfigError(f"{csv_path}: no network column ({', '.join(CONFIG_COLUMNS)} or --config-column) "
                          f"and no column named as a variable of space '{space.name}'")

    run_dir = Path(config.output).expanduser() / label / f"seed{seed}"
    if (run_dir / RunArchive.FILENAME).is_file():
        raise ConfigError(f"{run_dir} already holds a run; remove it or import under another --label or --seed")
    archive = RunArchive(run_dir)
    try:
        digest = hashlib.sha256(Path(csv_path).read_bytes()).hexdigest()
        settings = {"space": {"name": config.space.name, "options": dict(config.space.options)},
                    "evaluator": {"name": config.evaluator.name, "options": dict(config.evaluator.options)},
                    "objectives": [{"name": o.name, "bounds": list(o.bounds)} for o in config.objectives],
                    "reference_point": list(config.reference),
                    "strategy": {"name": "imported", "options": {"source": str(csv_path), "sha256": digest},
                                 "label": label},
                    "seed": int(seed)}
        archive.bind(settings, {"seed": int(seed), "experiment": config.name, "targets": list(config.targets),
                                "objectives": [{"name": o.name, "direction": o.direction, "unit": o.unit}
                                               for o in objectives],
                                "imported": {"source": str(Path(csv_path).resolve()), "sha256": digest}})
        tracker = HypervolumeTracker(Normalizer(objectives, [tuple(o.bounds) for o in config.objectives]),
                                     config.reference)
        n_dup = n_failed = 0
        for i, row in enumerate(rows, start=2):  # line numbers of the file (1 is the header)
            where = f"{csv_path}, line {i}"
            try:
                if network_column is not None:
                    net = to_config(parse_network_text(row[network_column]), space)
                else:
                    net = to_config(_from_columns(row, space), space)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            key = space.key(space.from_config(net))
            if key in archive:
                n_dup += 1
                continue
            metrics, error = _metrics(row, columns, objectives, where)
            hv = tracker.add([metrics[o.name] for o in objectives]) if error is None else tracker.value
            n_failed += error is not None
            archive.add(key, net, metrics if error is None else {}, error, 0.0, False, i - 2, hv)
        archive.set_meta("status", "complete")
        archive.set_meta("budget", archive.n_validated)
        return ImportResult(run_dir, len(rows), archive.n_validated, n_failed, n_dup, tracker.value)
    finally:
        archive.close()


def _objectives(config, space) -> list:
    """The objectives (with directions) of the config, from its evaluator's declared metrics."""
    from linas.evaluator import evaluators, make_evaluator

    cls = evaluators.get(config.evaluator.name)
    declared = tuple(cls.metrics)
    if not declared:  # declared by an instance (a surrogate): build it
        evaluator = make_evaluator(config.evaluator.name, space, config.evaluator.options)
        declared = tuple(evaluator.metrics)
        evaluator.close()
    by_name = {m.name: m for m in declared}
    missing = [o.name for o in config.objectives if o.name not in by_name]
    if missing:
        raise ConfigError(f"objective '{missing[0]}' is not a metric of evaluator '{config.evaluator.name}'")
    return [by_name[o.name] for o in config.objectives]


def _read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if not header or not rows:
        raise ConfigError(f"{p}: no rows (a header line, then one row per evaluation)")
    return header, rows


def _metric_columns(header: Sequence[str], objectives: Sequence[Any], given: Mapping[str, str],
                    where: str | Path) -> dict[str, str]:
    """metric name -> CSV column, for every column that holds a metric."""
    columns = {name: col for col, name in DYNAST_HEADERS.items() if col in header}
    columns.update({h: h for h in header if h in {o.name for o in objectives}})
    for name, col in given.items():
        if col not in header:
            raise ConfigError(f"{where}: --metric {name}={col}: no such column; columns: {', '.join(header)}")
        columns[name] = col
    missing = [o.name for o in objectives if o.name not in columns]
    if missing:
        raise ConfigError(f"{where}: no column for objective '{missing[0]}'; name it with "
                          f"--metric {missing[0]}=COLUMN (columns: {', '.join(header)})")
    return columns


def _metrics(row: Mapping[str, str], columns: Mapping[str, str], objectives: Sequence[Any], where: str
             ) -> tuple[dict[str, float], str | None]:
    status = (row.get("status") or "ok").strip().lower()
    if status not in ("ok", ""):
        return {}, (row.get("error") or "").strip() or f"status '{status}' in the imported file"
    out: dict[str, float] = {}
    for name, col in columns.items():
        text = (row.get(col) or "").strip()
        if not text:
            continue
        try:
            out[name] = float(text)
        except ValueError:
            raise ConfigError(f"{where}: column '{col}' ({name}) holds {text!r}, not a number") from None
    for o in objectives:
        if o.name not in out or not math.isfinite(out[o.name]):
            return {}, f"no value of '{o.name}' in the imported file"
    return out, None


def _from_columns(row: Mapping[str, str], space) -> dict[str, Any]:
    """A config from columns named as the variables; cell text is matched to the choices."""
    config: dict[str, Any] = {}
    for v in space.variables:
        text = (row.get(v.name) or "").strip()
        if not text:
            continue
        choice = next((c for c in v.choices if str(c) == text), None)
        if choice is None:
            try:
                number = float(text)
                choice = next((c for c in v.choices if isinstance(c, (int, float)) and c == number), None)
            except ValueError:
                pass
        if choice is None:
            raise ConfigError(f"space '{space.name}': {v.name}={text} is not one of {list(v.choices)}")
        config[v.name] = choice
    return config
