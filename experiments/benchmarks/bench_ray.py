"""Ray executor benchmark: throughput with 2 workers vs 1, and per-evaluation overhead.

1. **Throughput** on a CPU-bound evaluator: ``synthetic_mbv3`` plus a fixed amount of
   pure-Python work per network (``work`` loop iterations, calibrated to about
   ``--eval-seconds`` each; it holds the GIL, so only processes run it in parallel).
   The same batch of networks is evaluated in process, on 1 Ray worker and on 2;
   the ratio of evaluations per second (2 workers / 1) is the speed-up.
2. **Overhead** on a trivial evaluation (plain ``synthetic_mbv3``, about a millisecond):
   seconds per evaluation on 1 Ray worker minus in process, for a batch (as the search
   loop hands them over) and for batches of one (a full round trip each).

Every timing is the median of ``--repeats`` runs after a warm-up batch; pool start-up
(``ray.init`` and the workers building the evaluator) is reported apart. Results go to
``results/ray/bench_ray.json`` and ``results/ray/bench_ray.md``.

    python experiments/benchmarks/bench_ray.py            # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from linas.benchmarks.synthetic_mbv3 import SyntheticMobileNetV3
from linas.evaluator import evaluators, make_evaluator
from linas.executors import make_executor
from linas.runner import package_versions
from linas.spaces import get_space

RESULTS = Path(__file__).resolve().parents[2] / "results" / "ray"


@evaluators.register("bench_cpu_bound")
class CpuBound(SyntheticMobileNetV3):
    """synthetic_mbv3 plus ``work`` iterations of pure-Python arithmetic per network: a
    CPU-bound stand-in for a validation. The measurements and identity are unchanged."""

    class Options(SyntheticMobileNetV3.Options):
        work: int = 0

    def __init__(self, space, work: int = 0, **options):
        super().__init__(space, **options)
        self.work = int(work)

    def evaluate_one(self, config):
        start = time.thread_time()
        acc = 0
        for i in range(self.work):
            acc = (acc + i * i) % 1_000_003
        metrics = super().evaluate_one(config)
        # An extra entry (not an objective): the CPU seconds this evaluation got, to tell a
        # slow backend from a machine whose cores are busy with other processes.
        return {**metrics, "cpu_s": time.thread_time() - start}


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def busy_cores(seconds: float = 2.0) -> float:
    """Cores the machine keeps busy over ``seconds`` (while this process sleeps)."""
    b0, t0 = machine_busy()
    time.sleep(seconds)
    b1, t1 = machine_busy()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds until other processes use less than half a core; returns
    the cores they used at the last look (on a shared machine, a measure of contention)."""
    deadline = time.monotonic() + limit
    busy = busy_cores()
    while busy > 0.5 and time.monotonic() < deadline:
        busy = busy_cores()
    return busy


def timed_batch(evaluator, configs) -> dict:
    """Evaluate ``configs`` as one batch: wall time, the evaluations' CPU seconds, and how
    many cores the whole machine kept busy meanwhile (ours and other processes')."""
    busy0, total0 = machine_busy()
    start = time.perf_counter()
    outcomes = list(evaluator.evaluate(configs))
    wall = time.perf_counter() - start
    busy1, total1 = machine_busy()
    assert all(o.ok for _, o in outcomes) and len(outcomes) == len(configs)
    cpu = sum(o.metrics.get("cpu_s", 0.0) for _, o in outcomes)
    machine = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
    return {"wall_s": wall, "eval_cpu_s": cpu, "machine_busy_cores": machine}


def seconds(evaluator, configs, repeats: int) -> float:
    """Median wall time of evaluating ``configs`` as one batch (after one warm-up batch)."""
    list(evaluator.evaluate(configs[: max(2, len(configs) // 4)]))
    return statistics.median(timed_batch(evaluator, configs)["wall_s"] for _ in range(repeats))


def seconds_one_by_one(evaluator, configs, repeats: int) -> float:
    """Median wall time of evaluating ``configs`` in batches of one."""
    list(evaluator.evaluate(configs[:2]))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for c in configs:
            for _, outcome in evaluator.evaluate([c]):
                assert outcome.ok
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calibrate(space, configs, target: float) -> int:
    """Loop iterations that make one evaluation take about ``target`` seconds here."""
    probe = 200_000
    ev = make_evaluator("bench_cpu_bound", space, {"work": probe})
    start = time.perf_counter()
    for c in configs[:5]:
        ev.evaluate_one(c)
    per_eval = (time.perf_counter() - start) / 5
    return max(1, int(probe * target / per_eval))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evaluations", type=int, default=24, help="networks per CPU-bound batch")
    parser.add_argument("--eval-seconds", type=float, default=0.2, help="target CPU seconds per evaluation")
    parser.add_argument("--trivial", type=int, default=300, help="networks per trivial batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine's other processes to go (nearly) idle")
    args = parser.parse_args()
    other_busy = wait_quiet(args.wait_quiet)

    import ray

    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(0)  # fixed networks: every backend measures the same batch
    configs = [space.to_config(g) for g in space.sample(rng, max(args.evaluations, args.trivial))]
    load_before = os.getloadavg()

    start = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, logging_level="ERROR")
    ray_init_s = time.perf_counter() - start

    work = calibrate(space, configs, args.eval_seconds)
    cpu = {"work": work}
    heavy = configs[: args.evaluations]
    result: dict = {"evaluations": args.evaluations, "work_iterations": work, "repeats": args.repeats,
                    "ray_init_s": ray_init_s}

    # Both pools live side by side and the runs alternate (in process, 1 worker, 2 workers,
    # again...), so that the load of other processes drifting over time hits all three
    # alike. Ray's CPU count is logical: 3 lets the 1- and the 2-worker pool coexist; an
    # idle worker uses no CPU.
    backends = {"in_process": make_evaluator("bench_cpu_bound", space, cpu)}
    for n in (1, 2):
        start = time.perf_counter()
        backends[f"ray_{n}_workers"] = make_executor("ray", "bench_cpu_bound", space, cpu, {"num_workers": n})
        result[f"pool_start_{n}_workers_s"] = time.perf_counter() - start
    runs: dict[str, list[dict]] = {name: [] for name in backends}
    try:
        for ev in backends.values():  # warm-up
            list(ev.evaluate(heavy[:4]))
        for _ in range(args.repeats):
            for name, ev in backends.items():
                runs[name].append(timed_batch(ev, heavy))
    finally:
        for ev in backends.values():
            ev.close()
    table = {}
    for name, rs in runs.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        table[name] = {
            "eval_per_s": args.evaluations / wall,
            "wall_s_runs": [r["wall_s"] for r in rs],
            # Cores our evaluations actually got (CPU seconds per wall second): at most the
            # number of workers; less when other processes take the cores.
            "evaluation_cores": statistics.median(r["eval_cpu_s"] / r["wall_s"] for r in rs),
            "machine_busy_cores": statistics.median(r["machine_busy_cores"] for r in rs),
            "cpu_s_per_evaluation": statistics.median(r["eval_cpu_s"] for r in rs) / args.evaluations,
        }
    result["cpu_bound"] = table
    throughput = {name: t["eval_per_s"] for name, t in table.items()}
    result["throughput_eval_per_s"] = throughput
    result["seconds_per_evaluation_in_process"] = 1 / throughput["in_process"]
    result["speedup_2_vs_1_workers"] = throughput["ray_2_workers"] / throughput["ray_1_workers"]

    # The same with evaluations that wait instead of compute (synthetic_mbv3's `delay`), as
    # a validation on a GPU or a remote node would: the executor's own concurrency, which
    # other processes competing for this machine's cores barely touch.
    waiting = {"delay": args.eval_seconds}
    sleep_rates = {}
    for n in (1, 2):
        pool = make_executor("ray", "synthetic_mbv3", space, waiting, {"num_workers": n})
        try:
            sleep_rates[f"ray_{n}_workers"] = args.evaluations / seconds(pool, heavy, args.repeats)
        finally:
            pool.close()
    result["waiting_eval_per_s"] = sleep_rates
    result["waiting_seconds"] = args.eval_seconds
    result["waiting_speedup_2_vs_1_workers"] = sleep_rates["ray_2_workers"] / sleep_rates["ray_1_workers"]

    trivial = configs[: args.trivial]
    local = make_evaluator("synthetic_mbv3", space, {})
    pool = make_executor("ray", "synthetic_mbv3", space, {}, {"num_workers": 1})
    try:
        per_local = seconds(local, trivial, args.repeats) / args.trivial
        per_ray = seconds(pool, trivial, args.repeats) / args.trivial
        one_local = seconds_one_by_one(local, trivial[:100], args.repeats) / 100
        one_ray = seconds_one_by_one(pool, trivial[:100], args.repeats) / 100
    finally:
        pool.close()
    result["overhead"] = {
        "trivial_eval_in_process_ms": per_local * 1e3,
        "batch": {"ray_1_worker_ms": per_ray * 1e3, "overhead_ms": (per_ray - per_local) * 1e3},
        "one_by_one": {"in_process_ms": one_local * 1e3, "ray_1_worker_ms": one_ray * 1e3,
                       "overhead_ms": (one_ray - one_local) * 1e3},
    }
    ray.shutdown()

    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "other_busy_cores_at_start": other_busy,
                         "load_average_1m_before": load_before[0], "load_average_1m_after": os.getloadavg()[0]}
    result["versions"] = {**package_versions(), "ray": ray.__version__}
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ray.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "bench_ray.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    c, o = r["cpu_bound"], r["overhead"]
    return f"""# Ray executor benchmark

{r['date']}, {r['machine']['cpus']} CPUs ({r['machine']['platform']}), Ray {r['versions']['ray']};
load average {r['machine']['load_average_1m_before']:.2f} before, {r['machine']['load_average_1m_after']:.2f} after
(the machine is shared: other processes compete for the same cores). Medians of {r['repeats']} runs.
Produced by `python experiments/benchmarks/bench_ray.py`.

## Throughput on a CPU-bound evaluator

{r['evaluations']} networks, each {c['in_process']['cpu_s_per_evaluation']:.3f} CPU-s of pure-Python work; the
machine's other processes kept {r['machine']['other_busy_cores_at_start']:.2f} cores busy just before.

| backend | evaluations / s | cores our evaluations got | cores busy on the machine |
| --- | --- | --- | --- |
| in process | {c['in_process']['eval_per_s']:.2f} | {c['in_process']['evaluation_cores']:.2f} | {c['in_process']['machine_busy_cores']:.2f} |
| Ray, 1 worker | {c['ray_1_workers']['eval_per_s']:.2f} | {c['ray_1_workers']['evaluation_cores']:.2f} | {c['ray_1_workers']['machine_busy_cores']:.2f} |
| Ray, 2 workers | {c['ray_2_workers']['eval_per_s']:.2f} | {c['ray_2_workers']['evaluation_cores']:.2f} | {c['ray_2_workers']['machine_busy_cores']:.2f} |

**Speed-up, 2 workers vs 1: {r['speedup_2_vs_1_workers']:.2f}x** (ideal on {r['machine']['cpus']} idle cores: 2x).
"Cores our evaluations got" is the evaluations' CPU seconds per wall second; when it
stays below the number of workers, other processes held the cores, not Ray.

## Throughput on an evaluator that waits

The same {r['evaluations']} networks, each waiting {r['waiting_seconds']:g} s (`synthetic_mbv3` with `delay`), as a
validation on a GPU or another node does: Ray, 1 worker {r['waiting_eval_per_s']['ray_1_workers']:.2f} evaluations/s,
2 workers {r['waiting_eval_per_s']['ray_2_workers']:.2f} evaluations/s: **{r['waiting_speedup_2_vs_1_workers']:.2f}x**.

## Per-evaluation overhead (trivial evaluation)

| | in process | Ray, 1 worker | overhead |
| --- | --- | --- | --- |
| a batch (as the search loop hands them over) | {o['trivial_eval_in_process_ms']:.3f} ms | {o['batch']['ray_1_worker_ms']:.3f} ms | {o['batch']['overhead_ms']:.3f} ms |
| batches of one (full round trip) | {o['one_by_one']['in_process_ms']:.3f} ms | {o['one_by_one']['ray_1_worker_ms']:.3f} ms | {o['one_by_one']['overhead_ms']:.3f} ms |

One-time costs: `ray.init` of a local instance {r['ray_init_s']:.1f} s; starting the pool
(workers building the evaluator) {r['pool_start_1_workers_s']:.1f} s with 1 worker,
{r['pool_start_2_workers_s']:.1f} s with 2.
"""


if __name__ == "__main__":
    main()
