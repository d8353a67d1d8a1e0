"""A run's plan: the options the CLI parsed, and the sweep, budget, algorithm
and compiled space they resolve to, all validated before anything is
created (so that bad input leaves nothing behind)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import UsageError
from pipelines.records.storage import check_writable, default_storage, resolve
from pipelines.search.searchers import MULTI_OBJECTIVE, SEARCHERS
from pipelines.search.space import compile_space, to_tune
from pipelines.search.sweep import Budget, Sweep
from pipelines.search.sweep_loader import SweepRef, find_sweep, load_sweep
from pipelines.search.trial_schedulers import SCHEDULERS
from pipelines.search.warm_start import load_warm_start
from pipelines.training.tasks import TASKS, task
from pipelines.tuning.ray_session import check_cluster, joins_cluster
from pipelines.tuning.trackers import check_trackers


@dataclass(frozen=True)
class RunOptions:
    """A run as asked for: the CLI's flags, field for field (None: the sweep's or
    the budget's value); run.json keeps them for --resume."""

    sweep: str  # a name in search_spaces/, a .py file, or package.module[:ATTR]
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
    keep_checkpoints: int = 3  # finished trials whose checkpoints are kept: the best K
    address: str | None = None  # None: RAY_ADDRESS if set, else an embedded local Ray
    data_dir: str | None = None
    storage: str = dataclasses.field(default_factory=default_storage)
    name: str | None = None
    seed: int = 0
    resume: str | None = None  # a run directory to finish; everything else comes from it
    joint: bool = False  # a staged sweep's space searched all at once, stages ignored
    epoch_budget: int | None = None  # stop the search once its trials ran this many epochs
    lr_range: str | None = None  # "auto": narrow the lr domain by a range test first
    max_params: int | None = None  # a constraint: trainable parameters (None: the sweep's)
    max_memory_mb: float | None = None  # a constraint: a training step's peak memory
    batch_size: str | None = None  # "auto": the batch size finder's, lr scaled linearly
    confirm: int | None = None  # retrain the top K configurations with fresh seeds
    confirm_seeds: int = 3  # seeds per confirmed configuration
    run: str | None = None  # --confirm on this finished run directory instead of a search
    log: tuple[str, ...] = ()  # trackers fed by Ray Tune's logger callbacks (trackers.TRACKERS)
    warm_start: str | None = None  # an earlier run whose finished trials the search starts from


@dataclass(frozen=True)
class RunPlan:
    """A run as it will go: the options resolved against the sweep into a budget,
    an algorithm and a compiled space, all checked."""

    options: RunOptions
    sweep: Sweep
    algo: str
    budget: Budget
    num_samples: int  # Tune's (grid: 1)
    param_space: dict[str, Any]  # the compiled space, fixed values included
    fixed: dict[str, Any]
    trials: int  # the trials the search runs, in all (0 for a staged run: its stages say)
    carried: tuple[dict[str, Any], ...] = ()  # staged: the configurations a stage builds on
    ref: SweepRef | None = None  # where the sweep is defined; None: built in-process

    @property
    def staged(self) -> bool:
        return bool(self.sweep.stages)

    @property
    def constraints(self) -> dict[str, float]:
        """{cost column: limit}: the sweep's, with --max-params / --max-memory-mb on top."""
        flags = {"params": self.options.max_params, "peak_mem_mb": self.options.max_memory_mb}
        return {**self.sweep.constraints, **{k: v for k, v in flags.items() if v is not None}}

    @property
    def sweep_name(self) -> str:
        """The sweep's name: its results directory and its name in the output."""
        return self.ref.name if self.ref else self.options.sweep


def plan(options: RunOptions, sweep: Sweep | None = None) -> RunPlan:
    """Resolve and validate the sweep (the one `options` names, or `sweep`), its
    budget and space, the flags and the storage; create nothing."""
    ref = None
    if sweep is None:
        ref = find_sweep(options.sweep)
        sweep = load_sweep(ref)
    else:
        sweep.check()
    algo = options.algo or sweep.default_algo
    if algo not in SEARCHERS:
        raise UsageError(f"unknown --algo {algo!r}; choose one of {', '.join(SEARCHERS)}")
    if options.scheduler not in SCHEDULERS:
        raise UsageError(f"unknown --scheduler {options.scheduler!r}; choose one of "
                         f"{', '.join(SCHEDULERS)}")
    if sweep.multi_objective and algo not in MULTI_OBJECTIVE:
        raise UsageError(f"--algo {algo} searches one objective, and {options.sweep} has "
                         f"{len(sweep.objectives)}; use one of {', '.join(MULTI_OBJECTIVE)}")
    budget = _budget(sweep.budget(options.quick), options)
    if options.joint or not sweep.stages:
        sweep = dataclasses.replace(sweep, stages=())
    else:
        _check_staged(options)
    if sweep.runs_function:
        _check_function_flags(options)
    the_plan = dataclasses.replace(_compiled(options, sweep, algo, budget), ref=ref)
    if options.lr_range not in (None, "auto"):
        raise UsageError(f"--lr-range {options.lr_range!r}: the only mode is 'auto'")
    if options.lr_range and (sweep.runs_function or not task(sweep.task).range_test):
        tested = ", ".join(name for name, t in TASKS.items() if t.range_test)
        raise UsageError(f"--lr-range auto runs on {tested} sweeps; {options.sweep} is "
                         f"a {sweep.task_name} sweep, so drop --lr-range")
    if options.batch_size not in (None, "auto"):
        raise UsageError(f"--batch-size {options.batch_size!r}: the only mode is 'auto'")
    if options.batch_size and sweep.runs_function:
        raise UsageError(f"--batch-size auto needs a model the finder can build, and "
                         f"{options.sweep} runs its own trainable; drop --batch-size, or "
                         f"fix batch_size in the sweep")
    _check_resources(options)
    if options.name is not None and (not options.name or Path(options.name).name != options.name
                                     or options.name in (".", "..")):
        raise UsageError(f"--name {options.name!r} must be a plain directory name, without "
                         f"'/' or '..'")
    check_trackers(options.log, storage=resolve(options.storage))
    if options.warm_start and not options.resume:  # a resumed searcher has them already
        load_warm_start(options.warm_start, the_plan.sweep, algo, the_plan.param_space)
    check_writable(resolve(options.storage))
    check_cluster(options.address)  # last: it may wait seconds on the network
    return the_plan


def with_sweep(p: RunPlan, sweep: Sweep) -> RunPlan:
    """`p` with `sweep` in its place (the same sweep with a narrowed domain or
    another fixed value): compiled again, not validated or probed again."""
    return dataclasses.replace(_compiled(p.options, sweep, p.algo, p.budget), ref=p.ref)


def _compiled(options: RunOptions, sweep: Sweep, algo: str, budget: Budget) -> RunPlan:
    fixed = {**sweep.fixed, **budget.fixed, **sweep.horizon(budget, options.seed)}
    if sweep.stages:  # each stage compiles its own space (pipelines.tuning.staged)
        for stage in sweep.stages:  # here only to fail early, e.g. on a missing grid
            to_tune({k: sweep.space[k] for k in stage.params}, stage.algo or algo, fixed)
        return RunPlan(options, sweep, algo, budget, 0, {}, fixed, trials=0)
    space = compile_space(sweep.space, algo, fixed, options.num_samples or budget.num_samples,
                          options.seed, grid_passes=options.num_samples or 1)
    return RunPlan(options, sweep, algo, budget, space.num_samples, space.param_space, fixed,
                   trials=space.trials)


def _check_function_flags(options: RunOptions) -> None:
    for flag, value in (("--train-size", options.train_size), ("--val-size", options.val_size),
                        ("--data-dir", options.data_dir)):
        if value is not None:
            raise UsageError(f"{flag}: {options.sweep} runs its own trainable, which loads its "
                             f"own data; drop {flag}")


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
    for flag, limit in (("--max-params", options.max_params),
                        ("--max-memory-mb", options.max_memory_mb)):
        if limit is not None and not limit > 0:
            raise UsageError(f"{flag} must be > 0, got {limit}")
    for flag, value in (("--max-failures", options.max_failures),
                        ("--keep-checkpoints", options.keep_checkpoints)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if options.gpus_per_trial > 0 and not joins_cluster(options.address):
        import torch

        if torch.cuda.device_count() == 0:
            raise UsageError(f"--gpus-per-trial {options.gpus_per_trial} but this machine has "
                             f"no CUDA GPU; use --gpus-per-trial 0 or --address of a GPU cluster")
