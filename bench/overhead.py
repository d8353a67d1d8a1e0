"""Orchestration overhead: the same trials run (a) by the pipeline, an embedded
local Ray Tune run with no early stopping, and (b) by a bare process pool that
calls the same `pipelines.training.classify.train` on the same configs, data and order,
at the same concurrency and threads per trial.

    python -m bench.overhead [--epochs 8] [--train-size 5000] [--concurrency 2] [--repeats 3]

The trials are one pass over cifar_sweep's grid (12 configs) with the quick
budget's fixed values. Ray start-up and shut-down are timed on their own, so
the ratio is given with and without them. Per-trial overhead is the extra
worker-seconds per trial: (pipeline - bare) wall time * concurrency / trials.
The bare side's wall time includes starting its worker processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from pipelines.data.images import DataSpec, TrainValData, open_split, prepare
from pipelines.records.tables import CONFIG_PREFIX, read_parquet
from pipelines.search.space import grid_points
from pipelines.tuning.ray_session import start_ray
from pipelines.tuning.run_plan import RunOptions, RunPlan, plan
from pipelines.tuning.runner import run

SWEEP = "cifar_sweep"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.overhead",
                                description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial, all of them run")
    p.add_argument("--train-size", type=int, default=5000, help="training images")
    p.add_argument("--val-size", type=int, default=1000, help="validation images")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="torch threads per trial")
    p.add_argument("--concurrency", type=int, help="trials at once (default: CPUs // "
                                                   "cpus-per-trial)")
    p.add_argument("--data-dir", help="CIFAR-10 root (default: $RAYSWEEP_DATA_DIR or "
                                      "../shared/data)")
    p.add_argument("--repeats", type=int, default=3, help="pipeline/bare pairs; the median "
                                                           "ratio is reported")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.concurrency = args.concurrency or max(1, (os.cpu_count() or 1) // args.cpus_per_trial)
    args.data_dir = args.data_dir or os.environ.get("RAYSWEEP_DATA_DIR") or "../shared/data"
    return args


def grid_configs(p: RunPlan) -> list[dict]:
    """Every trial config of one grid pass, built as tuning.run_plan.plan builds Tune's."""
    names = list(p.sweep.space)
    points = [grid_points(p.sweep.space[name]) for name in names]
    return [{**p.fixed, **dict(zip(names, values))} for values in itertools.product(*points)]


def in_pipeline_order(configs: list[dict], trials: pd.DataFrame) -> list[dict]:
    """The configs in the order the pipeline started them; each must match a
    trial's config exactly, key for key."""
    ordered = []
    for _, row in trials.iterrows():
        seen = {str(k).removeprefix(CONFIG_PREFIX): v for k, v in row.items()
                if str(k).startswith(CONFIG_PREFIX)}
        match = [c for c in configs if c == seen]
        assert len(match) == 1, f"pipeline trial {row['trial_id']} ran an unexpected {seen}"
        ordered.append(match[0])
    assert len(ordered) == len(configs), f"pipeline ran {len(ordered)} of {len(configs)} trials"
    return ordered


def run_pipeline(options: RunOptions) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Time Ray start-up, run() (which reuses the started Ray) and ray.shutdown."""
    import ray

    times: dict[str, float] = {}
    start = time.perf_counter()
    # The runner's own start-up, timed here; run() then finds Ray started and reuses it.
    assert start_ray(options.address, options.gpus_per_trial), \
        "Ray was already running; the bench must start its own"
    times["init"] = time.perf_counter() - start
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        assert options.max_concurrent, "the bench runs a set number of trials at once"
        needed = options.max_concurrent * options.cpus_per_trial
        assert cpus >= needed, f"Ray has {cpus:g} CPUs, {needed:g} needed for the concurrency"
        start, cpu, others = time.perf_counter(), _cpu_s(), _cpu_s_but_trials()
        run_dir = run(options)
        times["run"], times["driver_cpu"] = time.perf_counter() - start, _cpu_s() - cpu
        others_after = _cpu_s_but_trials()
        times["others_cpu"] = sum(s - others.get(pid, 0.0) for pid, s in others_after.items())
        trials = read_parquet(run_dir / "trials.parquet")
        epochs = read_parquet(run_dir / "epochs.parquet")
    finally:
        start = time.perf_counter()
        ray.shutdown()
        times["shutdown"] = time.perf_counter() - start
    return times, trials, epochs


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_s_but_trials() -> dict[int, float]:
    """CPU-seconds so far of each process on this machine but Tune's trial workers:
    the driver, Ray's daemons (and anything else running). Linux /proc."""
    ticks, seconds = os.sysconf("SC_CLK_TCK"), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if b"ImplicitFunc" not in cmdline:
            seconds[int(pid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


@functools.lru_cache(maxsize=1)
def _data(spec: DataSpec) -> TrainValData:
    return open_split(spec)  # once per worker process, as pipelines.tuning.trainable does


def _bare_trial(config: dict, spec: DataSpec, threads: int) -> tuple[float, int, list[float]]:
    """One trial in a pool worker: (wall seconds, epochs run, train seconds per epoch)."""
    import torch

    from pipelines.training.classify import train
    from pipelines.training.config import TrainConfig

    start = time.perf_counter()
    torch.set_num_threads(threads)
    epoch_s: list[float] = []
    result = train(TrainConfig.from_dict(config), _data(spec),
                   report=lambda metrics, state: epoch_s.append(metrics["epoch_s"]))
    return time.perf_counter() - start, result.epochs, epoch_s


def run_bare(configs: list[dict], spec: DataSpec, concurrency: int,
             threads: int) -> tuple[float, list[tuple[float, int, list[float]]]]:
    start = time.perf_counter()
    # spawn: fresh interpreters that import torch themselves, as Ray's workers do
    with ProcessPoolExecutor(concurrency, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_bare_trial, c, spec, threads) for c in configs]
        results = []
        for i, future in enumerate(futures, 1):
            results.append(future.result())
            print(f"[{time.perf_counter() - start:6.1f}s] bare: {i}/{len(configs)} done",
                  flush=True)
    return time.perf_counter() - start, results


def measure_once(args: argparse.Namespace, options: RunOptions, configs: list[dict],
                 spec: DataSpec, bare_first: bool) -> dict[str, float]:
    """One pipeline run and one bare run of the same trials; returns the figures."""
    n_workers, threads = args.concurrency, args.cpus_per_trial
    bare = None
    if bare_first:
        print("--- bare process pool ---", flush=True)
        bare = run_bare(configs, spec, n_workers, threads)
    print("--- pipeline (Ray Tune) ---", flush=True)
    with tempfile.TemporaryDirectory(prefix="overhead-") as storage:
        times, trials, epochs = run_pipeline(dataclasses.replace(options, storage=storage))
    # No early stopping: a trial runs every epoch, or stops where its loss diverged,
    # which the bare side must then reproduce (same seed, same data order).
    done = trials["stop_reason"].isin(["completed", "diverged"])
    assert done.all(), f"pipeline trials failed:\n{trials[~done]}"
    ordered = in_pipeline_order(configs, trials)
    if bare is None:
        print("--- bare process pool ---", flush=True)
        bare = run_bare(ordered, spec, n_workers, threads)
    bare_s, bare_trials = bare
    # trials' row i ran ordered[i]; the bare side ran its configs in its own order
    expected = [trials["epochs"].iloc[ordered.index(c)] for c in (configs if bare_first
                                                                  else ordered)]
    assert [n for _, n, _ in bare_trials] == expected, "the two sides did different work"
    ray_s = times["init"] + times["shutdown"]
    return {
        "pipeline_s": times["run"] + ray_s, "run_s": times["run"], "ray_s": ray_s,
        "bare_s": bare_s, "driver_cpu_s": times["driver_cpu"],
        "others_cpu_share": times["others_cpu"] / (times["run"] * (os.cpu_count() or 1)),
        "pipeline_trial_s": trials["wall_s"].mean(),
        "bare_trial_s": statistics.mean(s for s, _, _ in bare_trials),
        "pipeline_epoch_s": epochs["epoch_s"].mean(),
        "bare_epoch_s": statistics.mean(s for _, _, ep in bare_trials for s in ep),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n_workers, threads = args.concurrency, args.cpus_per_trial
    options = RunOptions(SWEEP, quick=True, algo="grid", scheduler="none", num_samples=1,
                         max_epochs=args.epochs, train_size=args.train_size,
                         val_size=args.val_size, max_concurrent=n_workers,
                         cpus_per_trial=threads, max_failures=0, data_dir=args.data_dir,
                         name="overhead", seed=args.seed)
    configs = grid_configs(plan(options))
    spec = prepare(args.data_dir, None, args.train_size, args.val_size, args.seed)
    (Path(spec.cache) / "images.npy").read_bytes()  # warm the page cache: neither side pays
    print(f"{len(configs)} trials ({SWEEP} grid), {args.epochs} epochs each, "
          f"{args.train_size}/{args.val_size} train/val images, {n_workers} at once x "
          f"{threads} thread(s), {args.repeats} repeat(s); 1-min load before: "
          f"{os.getloadavg()[0]:.2f} (other work on these CPUs skews both sides)", flush=True)
    # Alternate which side goes first, so drift in the machine's speed cancels out.
    runs = [measure_once(args, options, configs, spec, bare_first=i % 2 == 1)
            for i in range(args.repeats)]
    per_trial = n_workers / len(configs)
    print(f"\n{len(configs)} trials x {args.epochs} epochs, concurrency {n_workers}")
    for i, r in enumerate(runs, 1):
        print(f"repeat {i}: pipeline {r['pipeline_s']:6.2f} s (Ray start/stop {r['ray_s']:.2f} s)"
              f", bare {r['bare_s']:6.2f} s, ratio {r['pipeline_s'] / r['bare_s']:.3f} incl. / "
              f"{r['run_s'] / r['bare_s']:.3f} excl. Ray start/stop; train epoch "
              f"{r['pipeline_epoch_s']:.3f} s vs {r['bare_epoch_s']:.3f} s")
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    incl = statistics.median(r["pipeline_s"] / r["bare_s"] for r in runs)
    excl = statistics.median(r["run_s"] / r["bare_s"] for r in runs)
    overhead = statistics.median((r["run_s"] - r["bare_s"]) * per_trial for r in runs)
    print(f"median ratio pipeline/bare  {incl:.3f} incl. Ray start/stop, {excl:.3f} excl.  "
          f"(target <= 1.05)")
    print(f"median overhead per trial   {overhead:.2f} s excl. Ray start/stop "
          f"(= (pipeline - bare) * concurrency / trials); Ray start/stop "
          f"{median['ray_s']:.2f} s per run")
    print(f"median trial wall           {median['pipeline_trial_s']:.2f} s pipeline, "
          f"{median['bare_trial_s']:.2f} s bare")
    print(f"median driver CPU in run()  {median['driver_cpu_s']:.2f} s; the driver and Ray's "
          f"daemons used {median['others_cpu_share']:.1%} of the machine's CPU time in run() "
          f"(time the trials could not have)")


if __name__ == "__main__":
    main()
