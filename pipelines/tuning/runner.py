"""Run a sweep on Ray Tune: validate everything, then start Ray, then create
the run directory, run the trials and write the Parquet results, then (--confirm)
retrain the top configurations with fresh seeds; or resume a run whose driver
died or was stopped; or only confirm a finished run (--confirm K --run RUN_DIR).

Validation comes first so that bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.analysis.confirmation import CONFIRM_FILE
from pipelines.data.cache import resolve_data_dir
from pipelines.data.images import DataSpec
from pipelines.errors import UsageError
from pipelines.records import tables as res
from pipelines.records.run_record import (
    check_new_run_dir,
    command_line,
    create_run_dir,
    git_commit,
    now_iso,
    package_versions,
)
from pipelines.records.storage import Location, resolve
from pipelines.search.space import describe
from pipelines.search.sweep_loader import is_file_argument, sweep_name
from pipelines.training.tasks import task
from pipelines.tuning import batch_fixing, confirm, lr_narrowing, resume_checks, staged
from pipelines.tuning.experiment import execute_experiment
from pipelines.tuning.ray_session import start_ray, stop_ray
from pipelines.tuning.run_plan import RunOptions, RunPlan, plan

if TYPE_CHECKING:
    from pipelines.tuning.trainable import TrialData


def run(options: RunOptions) -> Location:
    """Run the sweep end to end, then confirm its winners if asked (or finish
    `options.resume`, or only confirm the finished `options.run`); return its
    results directory."""
    if options.resume:
        return resume(options)
    if options.run:
        return confirm_run(options)
    the_plan = plan(options)
    confirm.check_options(options, the_plan.sweep)
    if options.batch_size:
        batch_fixing.check(the_plan)
    check_new_run_dir(resolve(options.storage), the_plan.sweep_name, options.name)
    data = _prepare_data(the_plan)
    batch_record = None
    if options.batch_size:  # before the range test: it runs at the fixed batch
        assert data is not None  # plan() refuses --batch-size auto for a trainable of its own
        the_plan, batch_record = batch_fixing.fix_batch(the_plan, data)
    narrowing = None
    if options.lr_range:  # before Ray starts: the range test has the machine to itself
        assert isinstance(data, DataSpec)  # plan() allows --lr-range on classification only
        the_plan, narrowing = lr_narrowing.narrow(the_plan, data)
    started_ray = start_ray(options.address, options.gpus_per_trial)
    try:
        run_dir = create_run_dir(resolve(options.storage), the_plan.sweep_name, options.name,
                                 "staged" if the_plan.staged else the_plan.algo)
        metadata = _run_metadata(the_plan, data)
        if batch_record:
            metadata["batch_size_finder"] = batch_record
        if narrowing:
            metadata["lr_range"] = lr_narrowing.write(narrowing, run_dir)
        _execute(the_plan, data, run_dir, metadata)
        if options.confirm:
            confirm.execute(the_plan, data, run_dir, k=options.confirm,
                            seeds=options.confirm_seeds)
    finally:
        stop_ray(started_ray)
    return run_dir


def resume(options: RunOptions) -> Location:
    """Finish a run whose driver died or was stopped: Tune restores its trials,
    searcher and our result records from the run's last saved experiment state;
    finished trials are not run again. A run stopped in its confirm phase (its
    search finished) finishes that."""
    if not options.resume:
        raise UsageError("resume needs the run directory to finish (RunOptions.resume)")
    run_dir = resolve(options.resume, "--resume")
    metadata = resume_checks.read_run_metadata(run_dir)
    stored = _stored_options(options, metadata, run_dir, "--resume")
    if metadata["status"] == "finished":
        raise UsageError(f"{run_dir} already finished; nothing to resume")
    resume_checks.check_no_live_driver(metadata, run_dir)
    the_plan = plan(stored)
    begun = metadata.get("confirm")  # the search finished before its confirm began
    if not the_plan.staged and not begun:  # a staged run checks each unfinished stage's own
        resume_checks.check_tune_state(run_dir)
    if metadata.get("batch_size_finder"):  # the batch found, not a second search
        the_plan = batch_fixing.apply(the_plan, metadata["batch_size_finder"])
    if metadata.get("lr_range"):  # the narrowed domain, not a second range test
        the_plan = lr_narrowing.apply(the_plan, metadata["lr_range"])
    data = _prepare_data(the_plan)
    started_ray = start_ray(the_plan.options.address, the_plan.options.gpus_per_trial)
    try:
        resumed = {"resumed": [*metadata.get("resumed", []), now_iso()]}
        if begun:
            confirm.execute(the_plan, data, run_dir, k=begun["k"], seeds=begun["seeds"],
                            fields=resumed)
        else:
            _execute(the_plan, data, run_dir, {**metadata, **resumed}, restore=True)
            if stored.confirm:
                confirm.execute(the_plan, data, run_dir, k=stored.confirm,
                                seeds=stored.confirm_seeds)
    finally:
        stop_ray(started_ray)
    return run_dir


def confirm_run(options: RunOptions) -> Location:
    """`--confirm K --run RUN_DIR`: retrain the finished run's top K configurations
    with fresh seeds (or finish a confirm of it begun; a confirm done with this K
    and seeds is shown again, not redone); return the run directory."""
    if not options.run or options.confirm is None:
        raise UsageError("--run RUN_DIR names the finished run that --confirm retrains; add "
                         "--confirm K, or drop --run")
    run_dir = resolve(options.run, "--run")
    metadata = resume_checks.read_run_metadata(run_dir)
    stored = dataclasses.replace(_stored_options(options, metadata, run_dir, "--run"),
                                 confirm=options.confirm, confirm_seeds=options.confirm_seeds)
    the_plan = plan(stored)
    confirm.check_options(stored, the_plan.sweep)
    asked = confirm.request(metadata, options.confirm, options.confirm_seeds, run_dir)
    if asked == "done":
        confirm.print_summary(res.read_parquet(run_dir / CONFIRM_FILE),
                              the_plan.sweep.primary_metric, the_plan.sweep.primary_mode,
                              list(the_plan.sweep.space))
        return run_dir
    if asked == "resume":
        resume_checks.check_no_live_driver(metadata, run_dir)
    else:
        confirm.check_scored(the_plan, run_dir)
    data = _prepare_data(the_plan)  # the search's split: its sizes and seed
    started_ray = start_ray(the_plan.options.address, the_plan.options.gpus_per_trial)
    try:
        confirm.execute(the_plan, data, run_dir, k=options.confirm, seeds=options.confirm_seeds)
    finally:
        stop_ray(started_ray)
    return run_dir


def _stored_options(options: RunOptions, metadata: dict[str, Any], run_dir: Location,
                    flag: str) -> RunOptions:
    """The options `run_dir` was started with, where this machine now runs it: the
    sweep from where its file is now (`options.sweep`), --address and --data-dir
    as given now, the storage the run directory is in."""
    known = {f.name for f in dataclasses.fields(RunOptions)}
    stored = RunOptions(**resume_checks.stored_options(metadata, known, run_dir))
    if options.sweep:  # the same sweep, perhaps from where its file is now
        recorded = metadata.get("sweep") or sweep_name(stored.sweep)
        if sweep_name(options.sweep) != recorded:
            raise UsageError(f"{run_dir} is a run of {recorded!r}, not {options.sweep!r}; "
                             f"drop the sweep name or give {flag} the right directory")
        stored = dataclasses.replace(stored, sweep=options.sweep)
    if is_file_argument(stored.sweep) and not Path(stored.sweep).expanduser().is_file():
        raise UsageError(f"{run_dir} was started from {stored.sweep}, which is gone (a job's "
                         f"working directory?); give the sweep file's path now: python -m "
                         f"pipelines.run path/to/{Path(stored.sweep).name} {flag} {run_dir}")
    # the cluster and the data may have moved since: --address and --data-dir win
    return dataclasses.replace(stored, address=options.address or stored.address,
                               data_dir=options.data_dir or stored.data_dir,
                               storage=resume_checks.storage_root(run_dir))


def _prepare_data(p: RunPlan) -> TrialData | None:
    """The trials' data, decoded once per machine; a split that does not fit the
    data fails here, not in every trial. None: the sweep's own trainable loads its own."""
    if p.sweep.runs_function:
        return None
    return task(p.sweep.task).prepare_data(p.options.data_dir, p.sweep.data,
                                           p.budget.train_size, p.budget.val_size,
                                           p.options.seed)


def _execute(p: RunPlan, data: TrialData | None, run_dir: Location, metadata: dict[str, Any],
             restore: bool = False) -> None:
    if p.staged:
        staged.execute(p, data, run_dir, metadata)
    else:
        execute_experiment(p, data, run_dir, metadata, restore=restore)


def _run_metadata(p: RunPlan, data: TrialData | None) -> dict[str, Any]:
    """run.json as a new run starts: what runs, on what, and how to run it again."""
    options = {**dataclasses.asdict(p.options), "resume": None,  # absolute, for --resume
               "sweep": p.ref.argument if p.ref else p.options.sweep,
               "storage": resolve(p.options.storage).uri,
               "data_dir": None if data is None else
               str(resolve_data_dir(p.options.data_dir).resolve())}
    return {
        "sweep": p.sweep_name, "sweep_origin": p.ref.origin if p.ref else None,
        "task": p.sweep.task_name,
        "algorithm": "staged" if p.staged else p.algo,
        "scheduler": p.options.scheduler,
        "metric": p.sweep.primary_metric, "mode": p.sweep.primary_mode,
        "objectives": [list(o) for o in p.sweep.objectives], "constraints": p.constraints,
        "quick": p.options.quick,
        "space": describe(p.sweep.space), "fixed": p.fixed,
        "stages": [dataclasses.asdict(s) for s in p.sweep.stages],
        "budget": {**dataclasses.asdict(p.budget), "num_samples": p.num_samples},
        "seed": p.options.seed, "data": None if data is None else data.record(),
        "resources": {"cpus_per_trial": p.options.cpus_per_trial,
                      "gpus_per_trial": p.options.gpus_per_trial,
                      "max_concurrent": p.options.max_concurrent},
        "options": options,  # what --resume runs again
        "command": command_line(), "versions": package_versions(), "git_commit": git_commit(),
        "start_time": now_iso(), "end_time": None, "status": "running",
    }
