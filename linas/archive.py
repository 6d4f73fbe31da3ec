"""Persistent storage of evaluations: one SQLite archive per run, one shared cache.

The run archive holds every evaluation a run asked for, written and committed the
moment it completes (a vectorized evaluator's chunk, measured in one call, in one
transaction: :meth:`RunArchive.add_many`), with the run's settings, seed and package versions. A run that
is started again with the same settings resumes from it; one with other settings is
refused rather than mixed in.

The evaluation cache is keyed by ``(evaluator identity, config key)`` and shared by
every strategy and seed that uses the same evaluator, so a network measured once is
never measured again; a cached measurement still counts as a validation for the run
that asks for it.

Evaluations at a lower fidelity (``f < 1``, e.g. on a share of the validation images)
go to their own table of the run archive, ``low_fidelity``, created with the first of
them and committed the moment each completes: they never count as validations nor
enter the hypervolume. A run's budget spent is its validations plus the sum of ``f``
over its successful low-fidelity evaluations (:attr:`RunArchive.spent`).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import io
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from linas.errors import ConfigError, LinasError

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_key TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    metrics TEXT NOT NULL,
    error TEXT,
    wall_time REAL NOT NULL,
    cached INTEGER NOT NULL,
    step INTEGER NOT NULL,
    n_validated INTEGER NOT NULL,
    hypervolume REAL,
    timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS diagnostics (
    step INTEGER NOT NULL,
    objective TEXT NOT NULL,
    predictor TEXT NOT NULL,
    n_train INTEGER NOT NULL,
    cv_error REAL,
    kendall_tau REAL,
    mae REAL,
    n_test INTEGER,
    fit_seconds REAL,
    PRIMARY KEY (step, objective)
);
"""


#: Created with a run's first low-fidelity evaluation, so runs without any keep their schema.
_LOW_FIDELITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS low_fidelity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_key TEXT NOT NULL,
    fidelity REAL NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    metrics TEXT NOT NULL,
    error TEXT,
    wall_time REAL NOT NULL,
    cached INTEGER NOT NULL,
    step INTEGER NOT NULL,
    n_validated INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    UNIQUE (config_key, fidelity)
)
"""


@dataclass(frozen=True)
class LowFidelityRecord:
    """One evaluation of a run at a fidelity below 1; ``n_validated``: the run's validations
    when it completed (it came after that many, before the next)."""

    key: str
    fidelity: float
    config: dict[str, Any]
    status: str
    metrics: dict[str, float]
    error: str | None
    wall_time: float
    cached: bool
    step: int
    n_validated: int
    timestamp: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Record:
    """One evaluation of a run."""

    key: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, float]
    error: str | None
    wall_time: float
    cached: bool
    step: int
    n_validated: int
    hypervolume: float | None
    timestamp: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _names_the_file(method: Callable[..., R]) -> Callable[..., R]:
    """Turn the file and database errors of an archive or cache method into one
    :class:`LinasError` line that names the file: ``PATH: what went wrong``."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise LinasError(f"{self.path}: {exc}") from None
        except sqlite3.Error as exc:  # not a database, or a damaged one
            raise LinasError(f"{self.path}: {exc} (not a readable linas database?)") from None
        except OSError as exc:
            raise LinasError(f"{exc.filename or self.path}: {exc.strerror or exc}") from None

    return wrapper


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise LinasError(f"{path}: is a directory, not a database file")
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL makes each commit durable before the next evaluation starts.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One commit (one synchronous write) for everything in the block."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class RunArchive:
    """The evaluations of one run, in the order they completed.

    Opened for a search (``exclusive``, the default), it holds an exclusive lock on the
    run directory (``flock`` on ``run.lock``, which holds the owner's PID) until it is
    closed or its process dies, so a second search of the same run stops at once instead
    of racing the first. Reports open it with :meth:`open_existing`, without the lock.
    """

    FILENAME = "archive.sqlite"
    LOCKFILE = "run.lock"

    @_names_the_file
    def __init__(self, run_dir: str | Path, exclusive: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.FILENAME
        self._lock: io.FileIO | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            if exclusive:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._lock = _lock(self.run_dir / self.LOCKFILE, f"run {self.run_dir}")
            if exclusive:
                self._conn = _connect(self.path)
                self._conn.executescript(_SCHEMA)
            else:  # reading never changes the file (committed archives stay byte-identical)
                self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0,
                                             isolation_level=None)
            self._records: dict[str, Record] = {r.key: r for r in self._read()}
            self._low: dict[tuple[str, float], LowFidelityRecord] = {
                (r.key, r.fidelity): r for r in self._read_low_fidelity()}
        except BaseException:
            self.close()
            raise
        self.n_validated = sum(r.ok for r in self._records.values())
        self._low_costs = [r.fidelity for r in self._low.values() if r.ok]
        self.low_fidelity_cost = math.fsum(self._low_costs)

    @classmethod
    def open_existing(cls, run_dir: str | Path) -> RunArchive:
        """The archive of a run for reading (no lock: a running search may be writing it)."""
        if not (Path(run_dir) / cls.FILENAME).is_file():
            raise ConfigError(f"{run_dir}: not a run directory (no {cls.FILENAME})")
        return cls(run_dir, exclusive=False)

    # --------------------------------------------------------------- metadata
    @_names_the_file
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT name, value FROM meta")}

    @_names_the_file
    def bind(self, settings: Mapping[str, Any], details: Mapping[str, Any]) -> bool:
        """Tie the archive to a run's settings; returns True when resuming.

        ``settings`` must match exactly on resume; ``details`` (versions, machine) are
        recorded the first time and kept.
        """
        stored = self.meta()
        if "settings" in stored:
            if stored["settings"] != json.loads(json.dumps(settings)):
                raise ConfigError(f"{self.run_dir} holds a run with other settings; "
                                  "use another output directory or remove it")
            return True
        with self._conn:
            for name, value in {"settings": settings, **details, "created": time.time()}.items():
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))
        return False

    @_names_the_file
    def set_meta(self, name: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    # --------------------------------------------------------------- evaluations
    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[Record]:
        """Every evaluation, in completion order."""
        return list(self._records.values())

    @_names_the_file
    def add(self, key: str, config: Mapping[str, Any], metrics: Mapping[str, float], error: str | None,
            wall_time: float, cached: bool, step: int, hypervolume: float | None,
            meta: Mapping[str, Any] | None = None) -> Record:
        """Persist one evaluation now (committed before returning), with the metadata entries
        ``meta`` in the same transaction."""
        return self.add_many([(key, config, metrics, error, wall_time, cached, step, hypervolume)], meta)[0]

    @_names_the_file
    def add_many(self, entries: list[tuple[str, Mapping[str, Any], Mapping[str, float], str | None, float, bool,
                                          int, float | None]],
                 meta: Mapping[str, Any] | None = None) -> list[Record]:
        """Persist several evaluations in one transaction (one commit), in order, all with the
        same timestamp; each entry holds :meth:`add`'s arguments ``(key, config, metrics, error,
        wall_time, cached, step, hypervolume)``. Stored exactly as that many calls of :meth:`add`
        would store them, except for the one timestamp: all or none are committed."""
        keys = [e[0] for e in entries]
        if len(set(keys)) != len(keys):
            raise ValueError("the same config twice in one batch of evaluations")
        for key in keys:
            if key in self._records:
                raise ValueError(f"config {key} is already in the archive")
        now = time.time()
        n_validated = self.n_validated
        records, rows = [], []
        for key, config, metrics, error, wall_time, cached, step, hypervolume in entries:
            status = "ok" if error is None else "failed"
            n_validated += status == "ok"
            record = Record(key, dict(config), status, dict(metrics), error, float(wall_time), bool(cached), step,
                            n_validated, hypervolume, now)
            records.append(record)
            rows.append((key, json.dumps(record.config), status, json.dumps(record.metrics), error, record.wall_time,
                         int(cached), step, n_validated, hypervolume, now))
        with _transaction(self._conn):
            self._conn.executemany(
                "INSERT INTO evaluations (config_key, config, status, metrics, error, wall_time, cached, step,"
                " n_validated, hypervolume, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._put_meta(meta)
        for record in records:
            self._records[record.key] = record
        self.n_validated = n_validated
        return records

    def _put_meta(self, meta: Mapping[str, Any] | None) -> None:
        for name, value in (meta or {}).items():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    # --------------------------------------------------------------- low-fidelity evaluations
    @property
    def spent(self) -> float:
        """Budget spent: validations plus the fidelity of every successful low-fidelity evaluation."""
        return self.n_validated + self.low_fidelity_cost

    def get_low_fidelity(self, key: str, fidelity: float) -> LowFidelityRecord | None:
        return self._low.get((key, float(fidelity)))

    def has_low_fidelity(self, key: str, fidelity: float) -> bool:
        return (key, float(fidelity)) in self._low

    @property
    def n_low_fidelity(self) -> int:
        """Low-fidelity evaluations stored, failed ones included."""
        return len(self._low)

    def low_fidelity_records(self) -> list[LowFidelityRecord]:
        """Every low-fidelity evaluation, in completion order."""
        return list(self._low.values())

    @_names_the_file
    def add_low_fidelity(self, key: str, fidelity: float, config: Mapping[str, Any], metrics: Mapping[str, float],
                         error: str | None, wall_time: float, cached: bool, step: int,
                         meta: Mapping[str, Any] | None = None) -> LowFidelityRecord:
        """Persist one evaluation at ``fidelity`` < 1 now (committed before returning)."""
        fidelity = float(fidelity)
        if not 0 < fidelity < 1:
            raise ValueError(f"a low-fidelity evaluation needs a fidelity in (0, 1), not {fidelity}")
        if (key, fidelity) in self._low:
            raise ValueError(f"config {key} at fidelity {fidelity:g} is already in the archive")
        status = "ok" if error is None else "failed"
        record = LowFidelityRecord(key, fidelity, dict(config), status, dict(metrics), error, float(wall_time),
                                   bool(cached), step, self.n_validated, time.time())
        with _transaction(self._conn):
            self._conn.execute(_LOW_FIDELITY_SCHEMA)
            self._conn.execute(
                "INSERT INTO low_fidelity (config_key, fidelity, config, status, metrics, error, wall_time, cached,"
                " step, n_validated, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, fidelity, json.dumps(record.config), status, json.dumps(record.metrics), error,
                 record.wall_time, int(cached), step, record.n_validated, record.timestamp))
            self._put_meta(meta)
        self._low[(key, fidelity)] = record
        if record.ok:
            self._low_costs.append(fidelity)
            self.low_fidelity_cost = math.fsum(self._low_costs)
        return record

    def _read_low_fidelity(self) -> Iterator[LowFidelityRecord]:
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'low_fidelity'").fetchone()
        if not exists:
            return
        rows = self._conn.execute(
            "SELECT config_key, fidelity, config, status, metrics, error, wall_time, cached, step, n_validated,"
            " timestamp FROM low_fidelity ORDER BY id").fetchall()
        for key, f, config, status, metrics, error, wall, cached, step, n_val, ts in rows:
            yield LowFidelityRecord(key, f, json.loads(config), status, json.loads(metrics), error, wall,
                                    bool(cached), step, n_val, ts)

    def _read(self) -> Iterator[Record]:
        rows = self._conn.execute(
            "SELECT config_key, config, status, metrics, error, wall_time, cached, step, n_validated,"
            " hypervolume, timestamp FROM evaluations ORDER BY id").fetchall()
        for key, config, status, metrics, error, wall, cached, step, n_val, hv, ts in rows:
            yield Record(key, json.loads(config), status, json.loads(metrics), error, wall, bool(cached), step,
                         n_val, hv, ts)

    # --------------------------------------------------------------- predictor diagnostics
    _DIAGNOSTIC_FIELDS = ("predictor", "n_train", "cv_error", "fit_seconds", "kendall_tau", "mae", "n_test")

    @_names_the_file
    def add_diagnostic(self, step: int, objective: str, values: Mapping[str, Any]) -> None:
        """Store predictor diagnostics of one outer iteration and objective (fields merge)."""
        fields = {k: _nan_to_none(v) if isinstance(v, float) else v for k, v in values.items()
                  if k in self._DIAGNOSTIC_FIELDS}
        if not fields:
            return
        if "predictor" not in fields:
            fields.setdefault("n_train", 0)
            fields["predictor"] = ""
        cols = ", ".join(fields)
        updates = ", ".join(f"{k} = excluded.{k}" for k in fields if k not in ("predictor", "n_train")
                            or values.get("predictor"))
        self._conn.execute(
            f"INSERT INTO diagnostics (step, objective, {cols}) VALUES (?, ?, {', '.join('?' * len(fields))})"
            f" ON CONFLICT (step, objective) DO UPDATE SET {updates}",
            (step, objective, *fields.values()))

    @_names_the_file
    def diagnostics(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT * FROM diagnostics ORDER BY step, objective")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    # --------------------------------------------------------------- export
    @_names_the_file
    def export_csv(self, path: str | Path, metric_names: list[str] | None = None, limit: int | None = None) -> Path:
        """One row per evaluation: order, status, metrics, hypervolume, timing, config
        (the first ``limit`` evaluations when given)."""
        records = self.records()[:limit]
        if metric_names is None:
            metric_names = sorted({m for r in records for m in r.metrics})
        config_names = list(records[0].config) if records else []
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["order", "status", "n_validated", "hypervolume", *metric_names, "wall_time", "cached",
                        "step", "error", "config_key", *config_names])
            for i, r in enumerate(records):
                w.writerow([i, r.status, r.n_validated, r.hypervolume, *[r.metrics.get(m) for m in metric_names],
                            f"{r.wall_time:.6g}", int(r.cached), r.step, r.error or "", r.key,
                            *[r.config.get(c) for c in config_names]])
        return path

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> RunArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(path: Path, what: str) -> io.FileIO:
    """``path`` open, holding an exclusive flock, with this PID written in it; LinasError
    naming the holder's PID when another process holds it. The lock goes with the file:
    closed (or garbage-collected with the archive), or its process dead (even by
    SIGKILL), it is released, so no stale lock outlives its run."""
    file = io.FileIO(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(file.fileno(), 32, 0).decode(errors="replace").strip() or "unknown"
        file.close()
        raise LinasError(f"{what} is in use by process {holder}") from None
    except BaseException:
        file.close()
        raise
    file.truncate(0)
    os.pwrite(file.fileno(), f"{os.getpid()}\n".encode(), 0)
    return file


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or x != x else float(x)


class EvaluationCache:
    """Successful measurements shared across runs, keyed by evaluator identity and config key."""

    @_names_the_file
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._conn = _connect(self.path)
        self._conn.execute("CREATE TABLE IF NOT EXISTS cache (evaluator TEXT NOT NULL, config_key TEXT NOT NULL,"
                           " metrics TEXT NOT NULL, wall_time REAL NOT NULL, timestamp REAL NOT NULL,"
                           " PRIMARY KEY (evaluator, config_key))")

    @_names_the_file
    def get(self, evaluator: str, key: str) -> tuple[dict[str, float], float] | None:
        row = self._conn.execute("SELECT metrics, wall_time FROM cache WHERE evaluator = ? AND config_key = ?",
                                 (evaluator, key)).fetchone()
        return None if row is None else (json.loads(row[0]), row[1])

    @_names_the_file
    def put(self, evaluator: str, key: str, metrics: Mapping[str, float], wall_time: float) -> None:
        self._conn.execute("INSERT OR IGNORE INTO cache VALUES (?, ?, ?, ?, ?)",
                           (evaluator, key, json.dumps(dict(metrics)), wall_time, time.time()))

    @_names_the_file
    def put_many(self, evaluator: str, entries: list[tuple[str, Mapping[str, float], float]]) -> None:
        """:meth:`put` of each ``(key, metrics, wall_time)``, in one transaction."""
        now = time.time()
        with _transaction(self._conn):
            self._conn.executemany("INSERT OR IGNORE INTO cache VALUES (?, ?, ?, ?, ?)",
                                   [(evaluator, k, json.dumps(dict(m)), w, now) for k, m, w in entries])

    @_names_the_file
    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0]

    def close(self) -> None:
        self._conn.close()
