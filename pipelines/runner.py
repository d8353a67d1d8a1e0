"""Run a sweep on Ray Tune: validate everything, then start Ray, then create
the run directory, run the trials and write the Parquet results; or resume a
run whose driver died or was stopped.

Validation comes first so that bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelines import lr_auto, seg_data, staged
from pipelines import resume as resume_checks
from pipelines.data import DataSpec, ensure_cache, open_split, resolve_data_dir
from pipelines.errors import UsageError
from pipelines.experiment import execute_experiment
from pipelines.run_record import (
    command_line,
    create_run_dir,
    git_commit,
    now_iso,
    package_versions,
)
from pipelines.schedulers import SCHEDULERS
from pipelines.searchers import SEARCHERS
from pipelines.seg_data import SegSpec
from pipelines.space import compile_space, describe, to_tune
from pipelines.storage import Location, check_writable, default_storage, resolve
from pipelines.sweep import Budget, Sweep, load_sweep


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
    joint: bool = False  # a staged sweep's space searched all at once, stages ignored
    epoch_budget: int | None = None  # stop the search once its trials ran this many epochs
    lr_range: str | None = None  # "auto": narrow the lr domain by a range test first


@dataclass(frozen=True)
class RunPlan:
    options: RunOptions
    sweep: Sweep
    algo: str
    budget: Budget
    num_samples: int
    param_space: dict
    fixed: dict
    carried: tuple[dict, ...] = ()  # staged: the configurations a stage builds on

    @property
    def staged(self) -> bool:
        return bool(self.sweep.stages)


def plan(options: RunOptions, sweep: Sweep | None = None) -> RunPlan:
    """Resolve and validate the sweep (the named one, or `sweep`: e.g. with a
    narrowed lr domain), its budget and space; create nothing."""
    if sweep is None:
        sweep = load_sweep(options.sweep)
    else:
        sweep.check()
    algo = options.algo or sweep.default_algo
    if algo not in SEARCHERS:
        raise UsageError(f"unknown --algo {algo!r}; choose one of {', '.join(SEARCHERS)}")
    if options.scheduler not in SCHEDULERS:
        raise UsageError(f"unknown --scheduler {options.scheduler!r}; choose one of "
                         f"{', '.join(SCHEDULERS)}")
    budget = _budget(sweep.quick if options.quick else sweep.full, options)
    if options.joint or not sweep.stages:
        sweep = dataclasses.replace(sweep, stages=())
    else:
        _check_staged(options)
    fixed = {**sweep.fixed, **budget.fixed, "epochs": budget.max_epochs, "seed": options.seed}
    if sweep.stages:  # each stage compiles its own space (pipelines.staged)
        for stage in sweep.stages:
            to_tune({k: sweep.space[k] for k in stage.params}, stage.algo or algo, fixed)
        param_space, num_samples = {}, 0
    else:
        param_space, num_samples = compile_space(sweep.space, algo, fixed, options.num_samples
                                                 or budget.num_samples, options.seed,
                                                 grid_passes=options.num_samples or 1)
    if options.lr_range not in (None, "auto"):
        raise UsageError(f"--lr-range {options.lr_range!r}: the only mode is 'auto'")
    if options.lr_range and sweep.task != "classification":
        raise UsageError(f"--lr-range auto runs on classification sweeps; {options.sweep} is "
                         f"a {sweep.task} sweep, so drop --lr-range")
    _check_resources(options)
    if options.name is not None and (not options.name or Path(options.name).name != options.name
                                     or options.name in (".", "..")):
        raise UsageError(f"--name {options.name!r} must be a plain directory name, without "
                         f"'/' or '..'")
    check_writable(resolve(options.storage))
    return RunPlan(options, sweep, algo, budget, num_samples, param_space, fixed)


def _check_staged(options: RunOptions) -> None:
    for flag, value in (("--num-samples", options.num_samples),
                        ("--epoch-budget", options.epoch_budget)):
        if value is not None:
            raise UsageError(f"{flag}: {options.sweep} runs in stages, each with its own "
                             f"number of trials; drop {flag}, or add --joint to search its "
                             f"whole space at once")


def _budget(base: Budget, options: RunOptions) -> Budget:
    overrides = {k: getattr(options, k) for k in
                 ("max_epochs", "grace_period", "reduction_factor", "train_size", "val_size")
                 if getattr(options, k) is not None}
    budget = dataclasses.replace(base, **overrides)
    positive = {"--num-samples": options.num_samples, "--max-epochs": budget.max_epochs,
                "--grace-period": budget.grace_period, "--train-size": budget.train_size,
                "--val-size": budget.val_size, "--max-concurrent": options.max_concurrent,
                "--epoch-budget": options.epoch_budget}
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


# An embedded Ray has no dashboard, so nothing reads its task events or metrics;
# recording them cost its driver and daemons ~1.2 CPU-s per minute of sweep, taken
# from the trials on a machine whose cores all train (bench/overhead.py).
EMBEDDED_RAY_CONFIG = {"task_events_report_interval_ms": 0, "enable_metrics_collection": False}


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
             logging_level="ERROR", configure_logging=True,
             **({} if _joins_cluster(options) else {"_system_config": EMBEDDED_RAY_CONFIG}))
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
    narrowing = None
    if options.lr_range:  # before Ray starts: the range test has the machine to itself
        the_plan, narrowing = lr_auto.narrow(the_plan, data)
    started_ray = _start_ray(options)
    try:
        run_dir = create_run_dir(resolve(options.storage), options.sweep, options.name,
                                 "staged" if the_plan.staged else the_plan.algo)
        metadata = _run_metadata(the_plan, data)
        if narrowing:
            metadata["lr_range"] = lr_auto.write(narrowing, run_dir)
        _execute(the_plan, data, run_dir, metadata)
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
    # the cluster and the data may have moved since: --address and --data-dir win
    the_plan = plan(dataclasses.replace(
        stored, address=options.address or stored.address,
        data_dir=options.data_dir or stored.data_dir,
        storage=resume_checks.storage_root(run_dir)))
    if not the_plan.staged:  # a staged run checks each unfinished stage's own state
        resume_checks.check_tune_state(run_dir)
    if metadata.get("lr_range"):  # the narrowed domain, not a second range test
        the_plan = lr_auto.apply(the_plan, metadata["lr_range"])
    data = _prepare_data(the_plan)
    started_ray = _start_ray(the_plan.options)
    try:
        metadata = {**metadata, "resumed": [*metadata.get("resumed", []), now_iso()]}
        _execute(the_plan, data, run_dir, metadata, restore=True)
    finally:
        _stop_ray(started_ray)
    return run_dir


def _prepare_data(p: RunPlan) -> DataSpec | SegSpec:
    """The trials' data, decoded once per machine; a split that does not fit the
    data fails here, not in every trial."""
    if p.sweep.task == "segmentation":
        return _prepare_segmentation(p)
    cache, source = ensure_cache(resolve_data_dir(p.options.data_dir))
    data = DataSpec(cache, p.budget.train_size, p.budget.val_size, p.options.seed, source)
    open_split(data)
    return data


def _prepare_segmentation(p: RunPlan) -> SegSpec:
    folder = seg_data.locate(p.options.data_dir, p.sweep.data)
    if not folder.is_dir():
        raise UsageError(f"no {p.sweep.data.folder} in {folder.parent}; point --data-dir at "
                         f"the directory that holds it")
    cache = seg_data.ensure_cache(folder, p.sweep.data)
    data = SegSpec(str(cache), str(folder), p.sweep.data, p.budget.train_size,
                   p.budget.val_size, p.options.seed)
    seg_data.open_seg(data)
    return data


def _execute(p: RunPlan, data: DataSpec, run_dir: Location, metadata: dict,
             restore: bool = False) -> None:
    if p.staged:
        staged.execute(p, data, run_dir, metadata)
    else:
        execute_experiment(p, data, run_dir, metadata, restore=restore)


def _stop_ray(started_ray: bool) -> None:
    if started_ray:
        import ray

        ray.shutdown()


def _run_metadata(p: RunPlan, data: DataSpec) -> dict:
    options = {**dataclasses.asdict(p.options), "resume": None,  # absolute, for --resume
               "storage": resolve(p.options.storage).uri,
               "data_dir": str(resolve_data_dir(p.options.data_dir).resolve())}
    return {
        "sweep": p.options.sweep, "task": p.sweep.task,
        "algorithm": "staged" if p.staged else p.algo,
        "scheduler": p.options.scheduler,
        "metric": p.sweep.metric, "mode": p.sweep.mode, "quick": p.options.quick,
        "space": describe(p.sweep.space), "fixed": p.fixed,
        "stages": [dataclasses.asdict(s) for s in p.sweep.stages],
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
