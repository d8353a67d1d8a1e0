"""Run a sweep on Ray Tune: validate everything, then start Ray, then create
the run directory, run the trials and write the Parquet results; or resume a
run whose driver died or was stopped.

Validation comes first so that bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from pipelines import results as res
from pipelines import resume as resume_checks
from pipelines.analysis import leaderboard, leaderboard_table
from pipelines.data import DataSpec, ensure_cache, open_split, resolve_data_dir
from pipelines.errors import RunInterrupted, UsageError
from pipelines.resume import TUNE_DIR
from pipelines.run_record import (
    command_line,
    create_run_dir,
    git_commit,
    now_iso,
    package_versions,
)
from pipelines.schedulers import SCHEDULERS
from pipelines.searchers import SEARCHERS
from pipelines.space import describe, to_tune
from pipelines.storage import Location, check_writable, default_storage, resolve
from pipelines.sweep import Budget, Sweep, load_sweep

LEADERBOARD_SIZE = 5
CHECKPOINTS_KEPT = 2  # per trial: the latest, plus one in case the latest is being written
# Tune saves its experiment state (trials, searcher, our recorder) at most this often.
# Its "auto" default waits >= 10 s; a killed driver would then redo up to 10 s of work.
EXPERIMENT_STATE_EVERY_S = "2"


@dataclass(frozen=True)
class RunOptions:
    sweep: str
    quick: bool = False
    algo: str | None = None  # None: the sweep's default
    scheduler: str = "asha"
    num_samples: int | None = None  # None: the budget's (grid: 1 pass over the grid)
    max_epochs: int | None = None
    grace_period: int | None = None
    reduction_factor: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2
    address: str | None = None  # None: RAY_ADDRESS if set, else an embedded local Ray
    data_dir: str | None = None
    storage: str = dataclasses.field(default_factory=default_storage)
    name: str | None = None
    seed: int = 0
    resume: str | None = None  # a run directory to finish; everything else comes from it


@dataclass(frozen=True)
class RunPlan:
    options: RunOptions
    sweep: Sweep
    algo: str
    budget: Budget
    num_samples: int
    param_space: dict
    fixed: dict


def plan(options: RunOptions) -> RunPlan:
    """Resolve and validate the sweep, budget and space; create nothing."""
    sweep = load_sweep(options.sweep)
    algo = options.algo or sweep.default_algo
    if algo not in SEARCHERS:
        raise UsageError(f"unknown --algo {algo!r}; choose one of {', '.join(SEARCHERS)}")
    if options.scheduler not in SCHEDULERS:
        raise UsageError(f"unknown --scheduler {options.scheduler!r}; choose one of "
                         f"{', '.join(SCHEDULERS)}")
    budget = _budget(sweep.quick if options.quick else sweep.full, options)
    fixed = {**sweep.fixed, **budget.fixed, "epochs": budget.max_epochs, "seed": options.seed}
    param_space = to_tune(sweep.space, algo, fixed)
    num_samples = options.num_samples or (1 if algo == "grid" else budget.num_samples)
    if algo == "grid" and num_samples > 1:
        # repeats of the grid differ by seed; identical repeats would teach nothing
        param_space["seed"] = tune.grid_search([options.seed + i for i in range(num_samples)])
        num_samples = 1
    _check_resources(options)
    if options.name is not None and (not options.name or Path(options.name).name != options.name
                                     or options.name in (".", "..")):
        raise UsageError(f"--name {options.name!r} must be a plain directory name, without "
                         f"'/' or '..'")
    check_writable(resolve(options.storage))
    return RunPlan(options, sweep, algo, budget, num_samples, param_space, fixed)


def _budget(base: Budget, options: RunOptions) -> Budget:
    overrides = {k: getattr(options, k) for k in
                 ("max_epochs", "grace_period", "reduction_factor", "train_size", "val_size")
                 if getattr(options, k) is not None}
    budget = dataclasses.replace(base, **overrides)
    positive = {"--num-samples": options.num_samples, "--max-epochs": budget.max_epochs,
                "--grace-period": budget.grace_period, "--train-size": budget.train_size,
                "--val-size": budget.val_size, "--max-concurrent": options.max_concurrent}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if budget.reduction_factor < 2:
        raise UsageError(f"--reduction-factor must be >= 2, got {budget.reduction_factor}")
    if budget.grace_period > budget.max_epochs:
        raise UsageError(f"--grace-period {budget.grace_period} exceeds --max-epochs "
                         f"{budget.max_epochs}; lower it or raise --max-epochs")
    return budget


def _check_resources(options: RunOptions) -> None:
    if options.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial must be > 0, got {options.cpus_per_trial}")
    if options.gpus_per_trial < 0:
        raise UsageError(f"--gpus-per-trial must be >= 0, got {options.gpus_per_trial}")
    if (options.address or "").startswith("ray://"):
        raise UsageError(f"--address {options.address}: Ray Client (ray://) is not supported, "
                         f"the driver must run in the cluster; use `ray job submit ... -- "
                         f"python -m pipelines.run ... --address auto`")
    if options.max_failures < 0:
        raise UsageError(f"--max-failures must be >= 0, got {options.max_failures}")
    if options.gpus_per_trial > 0 and not _joins_cluster(options):
        import torch

        if torch.cuda.device_count() == 0:
            raise UsageError(f"--gpus-per-trial {options.gpus_per_trial} but this machine has "
                             f"no CUDA GPU; use --gpus-per-trial 0 or --address of a GPU cluster")


def _joins_cluster(options: RunOptions) -> bool:
    return bool(options.address or os.environ.get("RAY_ADDRESS"))


def _start_ray(options: RunOptions) -> bool:
    """Start or join Ray; True if this call started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from sweeps
    if not _joins_cluster(options):
        # Ray starts workers at nice 15, so with every core running a trial the driver
        # and Ray's own daemons win each contention: trials trained 12-17% slower than
        # outside Ray (bench/overhead.py). Our embedded Ray runs nothing but the sweep.
        os.environ.setdefault("RAY_worker_niceness", "0")
    # "local": a new Ray for this run. ray.init() without an address would attach to
    # any cluster `ray start` left on this machine (/tmp/ray/ray_current_cluster).
    address = options.address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=True)
    gpus = ray.cluster_resources().get("GPU", 0)
    if options.gpus_per_trial > gpus:
        # An autoscaling cluster starts GPU nodes once trials ask for them (cluster.yaml
        # has min_workers: 0), so a cluster without GPUs yet is not an error.
        print(f"the Ray cluster has {gpus:g} GPUs now; trials wait until the autoscaler "
              f"adds GPU nodes ({options.gpus_per_trial:g} per trial)", file=sys.stderr)
    return True


def run(options: RunOptions) -> Location:
    """Run the sweep end to end (or finish `options.resume`); return its results directory."""
    if options.resume:
        return resume(options)
    the_plan = plan(options)
    data = _prepare_data(the_plan)
    started_ray = _start_ray(options)
    try:
        run_dir = create_run_dir(resolve(options.storage), options.sweep, options.name,
                                 the_plan.algo)
        _execute(the_plan, data, run_dir, _run_metadata(the_plan, data))
    finally:
        _stop_ray(started_ray)
    return run_dir


def resume(options: RunOptions) -> Location:
    """Finish a run whose driver died or was stopped: Tune restores its trials,
    searcher and our result records from the run's last saved experiment state;
    finished trials are not run again."""
    run_dir = resolve(options.resume, "--resume")
    metadata = resume_checks.read_run_metadata(run_dir)
    known = {f.name for f in dataclasses.fields(RunOptions)}
    stored = RunOptions(**resume_checks.stored_options(metadata, known, run_dir))
    if options.sweep and options.sweep != stored.sweep:
        raise UsageError(f"{run_dir} is a run of {stored.sweep!r}, not {options.sweep!r}; "
                         f"drop the sweep name or resume the right directory")
    if metadata["status"] == "finished":
        raise UsageError(f"{run_dir} already finished; nothing to resume")
    resume_checks.check_no_live_driver(metadata, run_dir)
    resume_checks.check_tune_state(run_dir)
    # the cluster and the data may have moved since: --address and --data-dir win
    the_plan = plan(dataclasses.replace(
        stored, address=options.address or stored.address,
        data_dir=options.data_dir or stored.data_dir,
        storage=resume_checks.storage_root(run_dir)))
    data = _prepare_data(the_plan)
    started_ray = _start_ray(the_plan.options)
    try:
        metadata = {**metadata, "resumed": [*metadata.get("resumed", []), now_iso()]}
        _execute(the_plan, data, run_dir, metadata, restore=True)
    finally:
        _stop_ray(started_ray)
    return run_dir


def _prepare_data(p: RunPlan) -> DataSpec:
    cache, source = ensure_cache(resolve_data_dir(p.options.data_dir))
    data = DataSpec(cache, p.budget.train_size, p.budget.val_size, p.options.seed, source)
    open_split(data)  # a split larger than the data fails here, not in every trial
    return data


def _stop_ray(started_ray: bool) -> None:
    if started_ray:
        import ray

        ray.shutdown()


def _run_metadata(p: RunPlan, data: DataSpec) -> dict:
    options = {**dataclasses.asdict(p.options), "resume": None,  # absolute, for --resume
               "storage": resolve(p.options.storage).uri,
               "data_dir": str(resolve_data_dir(p.options.data_dir).resolve())}
    return {
        "sweep": p.options.sweep, "algorithm": p.algo, "scheduler": p.options.scheduler,
        "metric": p.sweep.metric, "mode": p.sweep.mode, "quick": p.options.quick,
        "space": describe(p.sweep.space), "fixed": p.fixed,
        "budget": {**dataclasses.asdict(p.budget), "num_samples": p.num_samples},
        "seed": p.options.seed, "data": {"source": data.source, "train_size": data.train_size,
                                         "val_size": data.val_size},
        "resources": {"cpus_per_trial": p.options.cpus_per_trial,
                      "gpus_per_trial": p.options.gpus_per_trial,
                      "max_concurrent": p.options.max_concurrent},
        "options": options,  # what --resume runs again
        "command": command_line(), "versions": package_versions(), "git_commit": git_commit(),
        "start_time": now_iso(), "end_time": None, "status": "running",
    }


def _execute(p: RunPlan, data: DataSpec, run_dir: Location, metadata: dict,
             restore: bool = False) -> None:
    from pipelines.progress import ProgressPrinter, ResultRecorder

    # Ray's newer console output prints an experiment banner whatever the verbosity;
    # the legacy reporter honours verbose=0, and our ProgressPrinter reports instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if run_dir.is_local:  # on an object store each snapshot re-uploads Tune's whole state
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_STATE_EVERY_S)
    budget, metric, mode = p.budget, p.sweep.metric, p.sweep.mode

    def persist() -> None:
        records = list(recorder.records.values())
        now = time.time()
        res.write_parquet(res.trials_frame(records, metric=metric, mode=mode,
                                           max_epochs=budget.max_epochs, now=now),
                          run_dir / "trials.parquet")
        res.write_parquet(res.epochs_frame(records), run_dir / "epochs.parquet")

    def persist_or_warn() -> None:
        try:  # a storage hiccup mid-run must not end the sweep: the next write retries
            persist()
        except OSError as e:
            print(f"warning: could not write results to {run_dir} ({e}); retrying with the "
                  f"next result", file=sys.stderr, flush=True)

    recorder = ResultRecorder(persist_or_warn)
    total = p.num_samples * math.prod(len(v["grid_search"]) for v in p.param_space.values()
                                      if isinstance(v, dict) and "grid_search" in v)
    printer = ProgressPrinter(recorder, metric=metric, mode=mode, total=total,
                              max_epochs=budget.max_epochs)
    verb = "resuming" if restore else "running"
    print(f"{p.options.sweep}: {verb} {total} trials, {p.algo} search, {p.options.scheduler} "
          f"scheduler, up to {budget.max_epochs} epochs each; results in {run_dir}",
          file=sys.stderr, flush=True)
    tuner = _tuner(p, data, run_dir, callbacks=[recorder, printer], restore=restore)
    metadata = {**metadata, "status": "running", "end_time": None,
                "driver": resume_checks.driver_record()}
    res.write_json(metadata, run_dir / "run.json")
    status = "failed"
    try:
        tuner.fit()
        # Tune turns a first Ctrl-C into a graceful stop and returns normally.
        unfinished = len(recorder.records) < total or any(
            r.ended is None for r in recorder.records.values())
        status = "interrupted" if unfinished else "finished"
    except KeyboardInterrupt:  # a second Ctrl-C: Tune gave up waiting for trials
        status = "interrupted"
        raise RunInterrupted(run_dir) from None
    finally:
        try:
            persist()
        finally:  # run.json must not say "running" after this driver is gone
            res.write_json({**metadata, "end_time": now_iso(), "status": status},
                           run_dir / "run.json")
    print_leaderboard(run_dir, p)
    if status == "interrupted":
        raise RunInterrupted(run_dir)


def _tuner(p: RunPlan, data: DataSpec, run_dir: Location, callbacks: list, restore: bool):
    from pipelines.schedulers import build_scheduler
    from pipelines.searchers import build_searcher
    from pipelines.trainable import run_trial

    options, budget = p.options, p.budget
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data, threads=max(1, int(options.cpus_per_trial))),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    storage = run_dir.tune_storage()
    if restore:
        return _restored_tuner(run_dir, trainable, callbacks, storage.get("storage_filesystem"))
    return tune.Tuner(
        trainable,
        param_space=p.param_space,
        tune_config=tune.TuneConfig(
            metric=p.sweep.metric, mode=p.sweep.mode, num_samples=p.num_samples,
            reuse_actors=True,
            search_alg=build_searcher(p.algo, metric=p.sweep.metric, mode=p.sweep.mode,
                                      seed=options.seed, num_samples=p.num_samples),
            scheduler=build_scheduler(options.scheduler, max_epochs=budget.max_epochs,
                                      grace_period=budget.grace_period,
                                      reduction_factor=budget.reduction_factor),
            max_concurrent_trials=options.max_concurrent,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR, **storage, verbose=0, callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
        ),
    )


def _restored_tuner(run_dir: Location, trainable, callbacks: list, filesystem):
    tuner = tune.Tuner.restore((run_dir / TUNE_DIR).path, trainable, resume_unfinished=True,
                               resume_errored=False, restart_errored=False,
                               storage_filesystem=filesystem)
    # Tune restores the run config pickled at the start, callbacks included; ours are
    # this driver's (they write to this run_dir), and get their state from the snapshot.
    tuner._local_tuner.get_run_config().callbacks = callbacks
    return tuner


def print_leaderboard(run_dir: Location, p: RunPlan, stream=sys.stdout) -> None:
    trials = res.read_parquet(run_dir / "trials.parquet")
    metric = p.sweep.metric
    top = leaderboard(trials, metric, p.sweep.mode)
    table = leaderboard_table(top, metric, p.sweep.space)
    print(f"\ntop {len(top)} of {len(trials)} trials by {metric}:", file=stream)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), file=stream)
    counts = trials["stop_reason"].value_counts().to_dict()
    print("stop reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
          file=stream)
