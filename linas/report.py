"""Reports of runs: hypervolume curves, Pareto fronts, comparison tables.

The data behind each figure is computed once (:func:`load_run`, :func:`hv_matrix`,
:func:`compare_runs`) and then drawn, so tables and plots always agree.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no backend chosen at import
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from linas.archive import RunArchive  # noqa: E402
from linas.errors import LinasError  # noqa: E402
from linas.hypervolume import nondominated  # noqa: E402
from linas.errors import ConfigError  # noqa: E402
from linas.objectives import Objective, feasible  # noqa: E402
from linas.spec import RunSpec  # noqa: E402


@dataclass
class Run:
    """What a report needs of one run."""

    path: Path
    spec: RunSpec  # what the run is (objectives with bounds, strategy, seed, budget...)
    hv: np.ndarray  # hypervolume after validation 1, 2, ...
    values: np.ndarray  # (n_validated, n_objectives), in the objectives' own units
    metrics: list[dict]  # every metric of each validated network, in order
    archive: RunArchive
    wall_time_s: float  # of the whole run, over all its sessions
    n_records: int | None = None  # evaluations (failed ones included) within the budget; None: all
    #: Budget spent after validation 1, 2, ... (validations plus the fidelity of each successful
    #: low-fidelity evaluation before it) and in all; None for a run without low-fidelity evaluations.
    spent: np.ndarray | None = None
    total_spent: float | None = None
    #: Seconds of the run's evaluations that were measured (not served by the cache), low
    #: fidelity included; the rest of ``wall_time_s`` is the search's own overhead.
    evaluation_s: float = float("nan")

    @property
    def search_s_per_validation(self) -> float:
        """The strategy's overhead per validation: wall time minus measured evaluation time,
        over the validations (0 at least: evaluations run in parallel overlap)."""
        if not len(self.hv) or not np.isfinite(self.wall_time_s):
            return float("nan")
        return max(0.0, self.wall_time_s - self.evaluation_s) / len(self.hv)

    @property
    def has_low_fidelity(self) -> bool:
        return self.spent is not None

    @property
    def budget_axis(self) -> np.ndarray:
        """Budget spent after each validation: 1, 2, ... without low-fidelity evaluations."""
        return self.spent if self.spent is not None else np.arange(1, len(self.hv) + 1, dtype=float)

    @property
    def budget_spent(self) -> float:
        return self.total_spent if self.total_spent is not None else float(len(self.hv))

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def objectives(self) -> list[Objective]:
        return list(self.spec.objectives)

    @property
    def targets(self) -> list[float]:
        """Target hypervolumes named by the experiment config."""
        return list(self.spec.targets)

    @property
    def final_hv(self) -> float:
        return float(self.hv[-1]) if len(self.hv) else 0.0

    def close(self) -> None:
        """Close the run's archive (``with load_run(...) as run:`` does it)."""
        self.archive.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export_csv(self, path: str | Path) -> Path:
        """The run's evaluations as CSV, up to its budget."""
        return self.archive.export_csv(path, limit=self.n_records)

    def diagnostics(self) -> list[dict]:
        """Predictor diagnostics of the outer iterations whose networks fall within the budget."""
        rows = self.archive.diagnostics()
        if self.n_records is None:
            return rows
        records = self.archive.records()[: self.n_records]
        last = max((r.step for r in records), default=-1)
        return [d for d in rows if d["step"] <= last]


def load_run(run_dir: str | Path, budget: int | None = None) -> Run:
    """One run from its archive; with ``budget``, only its first ``budget`` validated networks
    (and the failed evaluations among them), as if it had stopped there (with low-fidelity
    evaluations: the validations within ``budget`` spent)."""
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be a positive number of validations, not {budget}")
    archive = RunArchive.open_existing(run_dir)
    meta = archive.meta()
    try:
        spec = RunSpec.from_meta(meta, where=str(run_dir))
    except ConfigError:
        archive.close()
        raise
    objectives = spec.objectives
    records = archive.records()
    spent, total = _spent(archive)
    n_records = None
    if budget is not None:
        ok_at = [i for i, r in enumerate(records) if r.ok]
        keep = budget if spent is None else int(np.searchsorted(spent, budget + 1e-9, side="right"))
        if len(ok_at) > keep:
            n_records = ok_at[keep - 1] + 1 if keep else 0
            records = records[:n_records]
        if spent is not None:
            spent, total = spent[:keep], min(total, float(budget))
    ok = [r for r in records if r.ok]
    evaluation_s = float(sum(r.wall_time for r in records if not r.cached)
                         + sum(r.wall_time for r in archive.low_fidelity_records() if not r.cached))
    return Run(Path(run_dir), spec, np.array([r.hypervolume for r in ok], dtype=float),
               np.array([[r.metrics[o.name] for o in objectives] for r in ok], dtype=float).reshape(
                   len(ok), len(objectives)), [r.metrics for r in ok], archive,
               # a run's wall time is not known at a point inside it
               float(meta.get("wall_time_s", float("nan"))) if n_records is None else float("nan"), n_records,
               spent, total, evaluation_s)


def _spent(archive: RunArchive) -> tuple[np.ndarray | None, float | None]:
    """Budget spent after each validation and in all (None, None without low-fidelity evaluations):
    a low-fidelity evaluation stored when the run had ``k`` validations came before the ``k + 1``-th."""
    if not archive.n_low_fidelity:
        return None, None
    low = [(r.n_validated, r.fidelity) for r in archive.low_fidelity_records() if r.ok]
    n = archive.n_validated
    cost = np.zeros(n + 1)  # cost[k]: low-fidelity budget spent between validations k and k + 1
    for k, f in low:
        cost[k] += f
    spent = np.arange(1, n + 1) + np.cumsum(cost)[:n]
    return spent, float(archive.spent)


def unfinished(runs: list[Run], budget: int | None = None) -> list[str]:
    """One line per run that stopped short of its budget (or of ``budget``, when comparing the
    runs as they stood then) without its strategy running out of networks: killed, or still
    running."""
    lines = []
    for r in runs:
        meta = r.archive.meta()
        wanted = int(meta.get("budget") or 0)
        wanted = min(wanted, budget) if budget else wanted
        # A run with cheaper evaluations ends when the next would overspend: within one validation.
        if r.budget_spent <= wanted - 1 + 1e-9 and meta.get("status") != "exhausted":
            done = (f"{len(r.hv)} of {wanted} validations" if not r.has_low_fidelity else
                    f"{r.budget_spent:.4g} of {wanted} budget spent")
            lines.append(f"{r.path}: {r.label} seed {r.seed} is unfinished ({done})")
    return lines


def feasible_mask(run: Run) -> np.ndarray:
    """Which validated networks satisfy every constraint of the run."""
    return np.array([feasible(run.spec.constraints, m) for m in run.metrics], dtype=bool)


def pareto_front(run: Run) -> np.ndarray:
    """The validated front among networks inside every constraint."""
    signs = np.array([o.sign for o in run.objectives])
    values = run.values[feasible_mask(run)]
    return values[nondominated(values * signs)]


def best_under_constraints(runs: list[Run]) -> pd.DataFrame:
    """Per strategy, constraint and objective: the best value any validated network inside
    that constraint reached, over seeds (mean, best, worst), and how many runs found one."""
    rows = []
    for label, rs in group_runs(runs).items():
        constraints = {c for r in rs for c in r.spec.constraints}
        for c in sorted(constraints, key=lambda c: c.describe()):
            for j, o in enumerate(rs[0].objectives):
                best = []
                for r in rs:
                    inside = [m[o.name] for m in r.metrics if c.metric in m and c.violation(m[c.metric]) <= 0]
                    if inside:
                        best.append(max(inside) if o.direction == "max" else min(inside))
                pick = max if o.direction == "max" else min
                worst = min if o.direction == "max" else max
                rows.append({"strategy": label, "constraint": c.describe(), "objective": o.label,
                             "found": f"{len(best)}/{len(rs)}",
                             "best_mean": float(np.mean(best)) if best else None,
                             "best": pick(best) if best else None, "worst": worst(best) if best else None})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- one run
def report_run(run: Run, out_dir: str | Path) -> list[Path]:
    """HV curve and Pareto-front PNGs, the evaluations CSV and the predictor diagnostics CSV."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [run.export_csv(out / "evaluations.csv")]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(run.budget_axis, run.hv)
    ax.set(xlabel="budget spent (validations + fidelity of cheaper evaluations)" if run.has_low_fidelity else
           "validations", ylabel="normalized hypervolume", title=f"{run.label}, seed {run.seed}")
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "hv_curve.png"))
    if len(run.objectives) >= 2:
        fig = Figure(figsize=(6, 4))
        _scatter_front(fig.subplots(), run, run.label, "C0")
        paths.append(_save(fig, out / "pareto_front.png"))
    diagnostics = run.diagnostics()
    if diagnostics:
        path = out / "predictor_diagnostics.csv"
        pd.DataFrame(diagnostics).to_csv(path, index=False)
        paths.append(path)
    return paths


def _scatter_front(ax, run: Run, label: str, color: str, all_points: bool = True) -> None:
    x, y = run.objectives[1], run.objectives[0]
    if all_points:
        inside = feasible_mask(run)
        ax.scatter(run.values[inside, 1], run.values[inside, 0], s=6, alpha=0.3, color=color)
        if not inside.all():
            ax.scatter(run.values[~inside, 1], run.values[~inside, 0], s=6, alpha=0.3, color="grey", marker="x",
                       label="outside a constraint")
    front = pareto_front(run)
    front = front[np.argsort(front[:, 1])]
    ax.step(front[:, 1], front[:, 0], where="post" if y.direction == "max" else "pre", color=color, label=label)
    ax.scatter(front[:, 1], front[:, 0], s=14, color=color)
    ax.set(xlabel=x.label, ylabel=y.label)
    ax.grid(alpha=0.3)
    ax.legend()


def _constrained_markdown(table: pd.DataFrame) -> str:
    if not len(table):
        return ""
    return ("\n## Best value under each constraint\n\nOver the validated networks inside the constraint; "
            "`found`: runs with at least one such network.\n\n" + table.to_markdown(index=False, floatfmt=".4g")
            + "\n")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)  # a PNG through Agg, whatever backend the process uses
    return path


# ----------------------------------------------------------------------------- several runs
def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        groups[r.label].append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in groups.items()}


def hv_matrix(runs: list[Run]) -> np.ndarray:
    """Runs x validations; a run shorter than the longest is held at its last value.

    Where a run has low-fidelity evaluations, columns are budget spent (1, 2, ...: the
    hypervolume of the validations made within that budget); without them the two agree."""
    if not any(_has_low_fidelity(r) for r in runs):
        n = max(len(r.hv) for r in runs)
        out = np.zeros((len(runs), n))
        for i, r in enumerate(runs):
            if len(r.hv):
                out[i, : len(r.hv)] = r.hv
                out[i, len(r.hv):] = r.hv[-1]
        return out
    n = max(math.ceil(r.budget_spent - 1e-9) for r in runs)
    out = np.zeros((len(runs), n))
    grid = np.arange(1, n + 1)
    for i, r in enumerate(runs):
        done = np.searchsorted(r.budget_axis, grid + 1e-9, side="right")  # validations within each budget
        out[i] = np.where(done > 0, np.append(r.hv, 0.0)[done - 1], 0.0)
    return out


def mean_and_ci(matrix: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over rows and a Student-t confidence band (no band for a single run)."""
    mean = matrix.mean(axis=0)
    n = matrix.shape[0]
    if n < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + level / 2, n - 1) * matrix.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def validations_to_reach(hv: np.ndarray, target: float) -> int | None:
    """Validations after which the hypervolume first reaches ``target`` (None: never)."""
    hit = np.flatnonzero(hv >= target)
    return int(hit[0]) + 1 if len(hit) else None


def budget_to_reach(run: Run, target: float) -> float | None:
    """Budget spent when the run's hypervolume first reaches ``target`` (None: never); the
    validations needed for a run without low-fidelity evaluations."""
    n = validations_to_reach(run.hv, target)
    if n is None or not _has_low_fidelity(run):
        return n
    return round(float(run.budget_axis[n - 1]), 6)


@dataclass
class Comparison:
    final: pd.DataFrame  # per strategy: runs, final HV mean, std
    reach: pd.DataFrame  # per target and strategy: runs that reached, median validations
    wilcoxon: pd.DataFrame  # per pair of strategies: paired seeds, p-value on final HV
    targets: list[float]
    constrained: pd.DataFrame  # per strategy, constraint and objective: best value inside it


def compare_runs(runs: list[Run], targets: list[float] | None = None, reference: str | None = None
                 ) -> Comparison:
    """Tables of a comparison. ``reference`` is the strategy that speed-ups are measured for
    (default: the first): ``speedup`` of another strategy's row is its median validations to
    reach the target divided by the reference's (how many times fewer validations the
    reference needed).

    A run that never reaches a target is censored at its last validation, not dropped:
    its entry reads ``>N`` (it needs more than the N validations it had), a median that
    falls among censored runs reads ``> M`` (a lower bound), and so does a speed-up over
    a strategy whose median is censored (``< x`` when the reference's median is).
    """
    groups = group_runs(runs)
    if reference is None:
        reference = next(iter(groups))
    elif reference not in groups:
        raise LinasError(f"reference strategy '{reference}' is not among the runs: {', '.join(groups)}")
    # With low-fidelity evaluations in any run, what it takes to reach a target is budget spent.
    cost = "budget" if any(_has_low_fidelity(r) for r in runs) else "validations"
    final_rows = []
    for label, rs in groups.items():
        f = np.array([r.final_hv for r in rs])
        row = {"strategy": label, "runs": len(rs), "validations": max(len(r.hv) for r in rs)}
        if cost == "budget":
            row["budget_spent"] = max(r.budget_spent for r in rs)
        final_rows.append({**row, "final_hv_mean": f.mean(), "final_hv_std": f.std(ddof=1) if len(f) > 1 else 0.0,
                           "wall_time_s_mean": float(np.mean([r.wall_time_s for r in rs])),
                           "search_s_per_validation": float(np.mean([r.search_s_per_validation for r in rs]))})
    final = pd.DataFrame(final_rows)
    if targets is None:  # the experiment's own targets
        targets = sorted({t for r in runs for t in r.targets})
    targets = sorted(set(targets) | {round(float(x), 4) for x in final["final_hv_mean"]})
    reach_rows = []
    for t in targets:
        medians = {}
        for label, rs in groups.items():
            needed = [budget_to_reach(r, t) for r in rs]
            got = [n for n in needed if n is not None]
            medians[label] = censored_median([(n, False) if n else (_spent_label(r), True)
                                              for n, r in zip(needed, rs)])
            reach_rows.append({"target_hv": t, "strategy": label, "reached": f"{len(got)}/{len(rs)}",
                               f"median_{cost}": _bounded(*medians[label]),
                               f"mean_{cost}": float(np.mean(got)) if got else None,  # of those that reached
                               "per_seed": " ".join(f">{_num(_spent_label(r))}" if n is None else _num(n)
                                                    for n, r in zip(needed, rs))})
        ref = medians[reference]
        for row in reach_rows[-len(groups):]:
            row[f"{reference}_speedup"] = None if row["strategy"] == reference else _speedup(
                medians[row["strategy"]], ref)
    wil_rows = []
    for a, b in itertools.combinations(groups, 2):
        seeds = sorted({r.seed for r in groups[a]} & {r.seed for r in groups[b]})
        fa = np.array([next(r.final_hv for r in groups[a] if r.seed == s) for s in seeds])
        fb = np.array([next(r.final_hv for r in groups[b] if r.seed == s) for s in seeds])
        p = float("nan")
        if len(seeds) >= 2 and np.any(fa != fb):
            p = float(stats.wilcoxon(fa, fb).pvalue)
        wil_rows.append({"a": a, "b": b, "paired_seeds": len(seeds), "mean_diff": float(np.mean(fa - fb))
                         if seeds else float("nan"), "wilcoxon_p": p})
    return Comparison(final, pd.DataFrame(reach_rows), pd.DataFrame(wil_rows), targets, best_under_constraints(runs))


def _has_low_fidelity(run: Run) -> bool:
    return getattr(run, "spent", None) is not None  # duck-typed runs without the field have none


def _spent_label(run: Run) -> float:
    return len(run.hv) if not _has_low_fidelity(run) else round(run.budget_spent, 6)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def censored_median(values: list[tuple[float, bool]]) -> tuple[float, bool]:
    """``(median, is_lower_bound)`` of ``(value, censored)`` pairs, a censored value meaning
    "more than value". The median is exact when it falls among uncensored values; else it
    is the median of the values as lower bounds, and only a lower bound."""
    exact = np.median([np.inf if c else v for v, c in values])
    if np.isfinite(exact):
        return float(exact), False
    return float(np.median([v for v, _ in values])), True


def _bounded(value: float, lower_bound: bool) -> float | str:
    return f"> {value:g}" if lower_bound else value


def _speedup(other: tuple[float, bool], ref: tuple[float, bool]) -> float | str | None:
    """``other / ref`` of two censored medians: exact, ``> x``, ``< x`` or unknown (None)."""
    (o, o_bound), (r, r_bound) = other, ref
    if o_bound and r_bound or not r:
        return None
    if o_bound:
        return f"> {o / r:.3g}"
    if r_bound:
        return f"< {o / r:.3g}"
    return o / r


def _machines(runs: list[Run]) -> list[str]:
    """The machines the runs were measured on (as each run's archive recorded them)."""
    seen = {}
    for r in runs:
        meta = r.archive.meta()
        # The machine the run started on, and those of the sessions that resumed it.
        machines = [meta.get("machine") or {}] + [s.get("machine") or {} for s in meta.get("sessions", [])]
        for text in dict.fromkeys(", ".join(f"{k} {v}" for k, v in sorted(m.items())) or "not recorded"
                                  for m in machines):
            seen.setdefault(text, []).append(f"{r.label} seed {r.seed}")
    return [f"{text}: {len(names)} run(s)" for text, names in seen.items()]


def report_comparison(runs: list[Run], out_dir: str | Path, targets: list[float] | None = None,
                      comparison: Comparison | None = None) -> list[Path]:
    """HV-curve plot (mean and 95% band per strategy), Pareto fronts, and tables (CSV and Markdown)
    of ``comparison`` (by default :func:`compare_runs` of ``runs`` and ``targets``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    comparison = comparison or compare_runs(runs, targets)
    # Where a run spends budget on low-fidelity evaluations, runs are compared by budget spent
    # (for the others it is their validations).
    by_budget = any(_has_low_fidelity(r) for r in runs)
    x_label = "budget spent (validations + fidelity of cheaper evaluations)" if by_budget else "validations"
    # Left: the whole run; right: from a tenth of the budget on, where the first steep
    # rise no longer sets the scale and small differences between strategies show.
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    curves = []
    for i, (label, rs) in enumerate(groups.items()):
        m = hv_matrix(rs)
        curves.append((i, label, len(rs), np.arange(1, m.shape[1] + 1), *mean_and_ci(m)))
    n = max(len(c[3]) for c in curves)
    start = max(1, n // 10)
    for ax, first in zip(axes, (1, start)):
        for i, label, runs_n, x, mean, lo, hi in curves:
            keep = x >= first
            ax.plot(x[keep], mean[keep], color=f"C{i}", label=f"{label} (n={runs_n})")
            ax.fill_between(x[keep], lo[keep], hi[keep], color=f"C{i}", alpha=0.2)
        ax.set(xlabel=x_label, ylabel="normalized hypervolume")
        ax.grid(alpha=0.3)
    axes[0].set_title("hypervolume: mean and 95% CI")
    axes[1].set_title(f"from budget {start} on" if by_budget else f"from validation {start} on")
    axes[0].legend()
    paths = [_save(fig, out / "hv_curves.png")]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, (label, rs) in enumerate(groups.items()):
        _scatter_front(ax, rs[0], f"{label} (seed {rs[0].seed})", f"C{i}", all_points=False)
    ax.set_title("validated Pareto fronts")
    paths.append(_save(fig, out / "pareto_fronts.png"))
    comparison.final.to_csv(out / "final_hv.csv", index=False)
    comparison.reach.to_csv(out / "validations_to_reach.csv", index=False)
    comparison.wilcoxon.to_csv(out / "wilcoxon.csv", index=False)
    if len(comparison.constrained):
        comparison.constrained.to_csv(out / "best_under_constraints.csv", index=False)
        paths.append(out / "best_under_constraints.csv")
    md = out / "comparison.md"
    reach_text = ("## Validations needed to reach a hypervolume\n\n"
                  "A run that never reaches it counts as `>N` (more than its N validations); a median "
                  "among those is a lower bound (`> M`), and so is a speed-up over it. `reached`: how "
                  "many runs reached it; `mean_validations`: over those.\n\n")
    if by_budget:
        reach_text = ("## Budget spent to reach a hypervolume\n\n"
                      "Budget spent: validations plus the fidelity of each successful low-fidelity evaluation "
                      "(equal to validations for runs without them). A run that never reaches it counts as `>N` "
                      "(more than the N it spent); a median among those is a lower bound (`> M`), and so is a "
                      "speed-up over it. `reached`: how many runs reached it; `mean_budget`: over those.\n\n")
    md.write_text("## Final hypervolume\n\n" + comparison.final.to_markdown(index=False, floatfmt=".4f")
                  + "\n\n`wall_time_s_mean`: each run's wall time over all its sessions; "
                  "`search_s_per_validation`: that wall time less the evaluations measured for it "
                  "(cache hits cost none), per validation: the strategy's own overhead.\n\n" + reach_text
                  + comparison.reach.to_markdown(index=False, floatfmt=".4g")
                  + "\n\n## Wilcoxon signed-rank test on final hypervolume over paired seeds\n\n"
                  + comparison.wilcoxon.to_markdown(index=False, floatfmt=".4g") + "\n"
                  + _constrained_markdown(comparison.constrained)
                  + "\n## Machines\n\n" + "\n".join(f"- {m}" for m in _machines(runs)) + "\n")
    paths += [out / "final_hv.csv", out / "validations_to_reach.csv", out / "wilcoxon.csv", md]
    for r in runs:
        paths.append(r.export_csv(out / "runs" / f"{r.label}_seed{r.seed}.csv"))
        diagnostics = r.diagnostics()
        if diagnostics:  # predictor quality per outer iteration (LINAS)
            path = out / "runs" / f"{r.label}_seed{r.seed}_predictors.csv"
            pd.DataFrame(diagnostics).to_csv(path, index=False)
            paths.append(path)
    return paths
