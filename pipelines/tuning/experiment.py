"""One Ray Tune experiment: a plan's trials run (or restored), every result
recorded into the run directory's Parquet files as it arrives, and run.json
kept honest about the experiment's status."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.stopper import CombinedStopper

from pipelines.analysis.objectives import objective_columns
from pipelines.analysis.ranking import (
    format_table,
    leaderboard,
    leaderboard_table,
    stop_reason_summary,
)
from pipelines.errors import RunInterrupted, UsageError
from pipelines.records import tables as res
from pipelines.records.result_log import ResultLog
from pipelines.records.run_record import run_status
from pipelines.records.storage import Location
from pipelines.records.tables import CHECKPOINT_RANK_KEY, START_CONSTRAINTS, violations
from pipelines.search.searchers import OWN_STUDY, ConstrainedOptunaSearch
from pipelines.search.sweep import with_carried
from pipelines.search.trial_schedulers import TIME_ATTR, build_scheduler
from pipelines.tuning.callback_telemetry import skipped_when_usage_stats_off
from pipelines.tuning.checkpoint_deletion import DeferredCheckpointDeletion
from pipelines.tuning.checkpoint_retention import CheckpointRetention
from pipelines.tuning.progress import ProgressPrinter
from pipelines.tuning.recorder import ResultRecorder
from pipelines.tuning.resume_checks import TUNE_DIR
from pipelines.tuning.study_journal import StudyJournal, StudyMirror, study_journal
from pipelines.tuning.trackers import tracker_callbacks
from pipelines.tuning.trial_log import TrialJsonLogger

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from pipelines.tuning.run_plan import RunPlan
    from pipelines.tuning.trainable import TrialData

# per trial, the best epoch's checkpoint (by the primary objective) and the latest, which
# Tune keeps besides the best: two at most, whatever the epochs (bounded disk), and
# the few superseded ones that wait for a snapshot that no longer names them
# (checkpoint_deletion.py)
CHECKPOINTS = tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_RANK_KEY,
                                    checkpoint_score_order="max")
# Tune saves its experiment state (trials, searcher, our recorder) at most this often.
# Its "auto" default waits >= 10 s; a killed driver would then redo up to 10 s of work.
EXPERIMENT_STATE_EVERY_S = "2"
SNAPSHOT_EVERY_2S_UP_TO = 250  # trials: Tune's snapshot is then <= ~3 MB, ~50 ms to write
STATE_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
_STATE_EVERY_OURS = (EXPERIMENT_STATE_EVERY_S, "auto")


class EpochBudget(tune.Stopper):
    """Stops the whole search once its trials have run `epochs` epochs in total
    (counted by the recorder, so a resumed run counts what ran before)."""

    def __init__(self, recorder: ResultRecorder, epochs: int) -> None:
        self.recorder, self.epochs = recorder, epochs

    def spent(self) -> bool:
        return self.recorder.epoch_count >= self.epochs

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.spent()


def execute_experiment(p: RunPlan, data: TrialData | None, run_dir: Location,
                       metadata: dict[str, Any], *, restore: bool = False,
                       show_leaderboard: bool = True,
                       after_persist: Callable[[], object] | None = None,
                       study_name: str | None = None, journal_dir: Location | None = None
                       ) -> None:
    """Run the plan's trials into `run_dir` (or finish them: `restore`);
    `after_persist` runs after each write of the results. The trials' Optuna study
    (`study_name`, default <sweep>/<run>) goes to the journal in `journal_dir`
    (default: `run_dir`)."""
    _set_tune_environment(run_dir, p.trials)
    journal = study_journal(run_dir, study_name or f"{p.sweep_name}/{run_dir.name}",
                            journal_dir)
    mirror = None if journal is None or p.algo in OWN_STUDY else \
        StudyMirror(journal, p.sweep.objectives, p.sweep.space)
    recorder = _recorder(p, run_dir, after_persist, mirror)
    budget_stop = EpochBudget(recorder, p.options.epoch_budget) \
        if p.options.epoch_budget else None
    printer = ProgressPrinter(recorder, metric=p.sweep.primary_metric, total=p.trials)
    _announce(p, run_dir, restore)
    retention = CheckpointRetention(p.options.keep_checkpoints, metric=p.sweep.primary_metric,
                                    mode=p.sweep.primary_mode)
    deletion = DeferredCheckpointDeletion()  # Tune's, of superseded checkpoints
    # Tune gives each callback the saved state at its index: a new one goes last
    tuner = _tuner(p, data, run_dir,
                   callbacks=[recorder, printer, retention, TrialJsonLogger(),
                              *tracker_callbacks(p.options.log, run_dir, p.sweep_name),
                              deletion],
                   stop=_stopper(p, budget_stop), restore=restore,
                   journal=journal if p.algo in OWN_STUDY else None)
    with run_status(metadata, run_dir, flush=recorder.persist) as record:
        with deletion.deferring(), skipped_when_usage_stats_off():
            tuner.fit()
        record.status = _status_after_fit(recorder, p.trials, budget_stop)
        # this driver's writes of the results (bench/scale.py reads them)
        record.metadata["result_writes"] = recorder.log.stats()
    if show_leaderboard:
        print_leaderboard(run_dir, p)
    if record.status == "interrupted":
        raise RunInterrupted(run_dir)


def _set_tune_environment(run_dir: Location, trials: int) -> None:
    """Tune's knobs that only its environment sets; the user's own settings win."""
    # Ray's newer console output prints an experiment banner whatever the verbosity;
    # the legacy reporter honours verbose=0, and our ProgressPrinter reports instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's raw log stays (result.json per trial); its CSV and TensorBoard copies of
    # every result would be written by the driver, beside the Parquet that is the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    every = experiment_state_every(run_dir, trials)
    if os.environ.get(STATE_ENV, every) in (every, *_STATE_EVERY_OURS):  # not the user's
        os.environ[STATE_ENV] = every


def experiment_state_every(run_dir: Location, trials: int) -> str:
    """Tune's TUNE_GLOBAL_CHECKPOINT_S for a run: a snapshot every 2 s for a local run
    of up to SNAPSHOT_EVERY_2S_UP_TO trials (a killed driver redoes <= 2 s of work).
    Tune's snapshot holds ~12 KB per trial and is rewritten whole, so a longer run,
    or one on an object store (each snapshot re-uploaded), takes Tune's "auto": every
    >= 10 s, and never more than 5% of the driver's time."""
    small = run_dir.is_local and trials <= SNAPSHOT_EVERY_2S_UP_TO
    return EXPERIMENT_STATE_EVERY_S if small else "auto"


def _recorder(p: RunPlan, run_dir: Location, after_persist: Callable[[], object] | None,
              mirror: StudyMirror | None) -> ResultRecorder:
    """The driver's recorder of every result into `run_dir`'s Parquet files;
    `after_persist` runs after each write; `mirror` gets each trial that ends."""
    log = ResultLog(run_dir, metric=p.sweep.primary_metric, mode=p.sweep.primary_mode,
                    max_epochs=p.budget.max_epochs, objectives=p.sweep.objectives,
                    constraints=p.constraints)
    return ResultRecorder(log, on_change=after_persist or (lambda: None),
                          expand=functools.partial(with_carried, carried=p.carried),
                          on_end=mirror.add if mirror else None)


def _announce(p: RunPlan, run_dir: Location, restore: bool) -> None:
    verb = "resuming" if restore else "running"
    print(f"{p.sweep_name}: {verb} {p.trials} trials, {p.algo} search, "
          f"{p.options.scheduler} scheduler, up to {p.budget.max_epochs} epochs each; "
          f"results in {run_dir}", file=sys.stderr, flush=True)


def _status_after_fit(recorder: ResultRecorder, total: int,
                      budget_stop: EpochBudget | None) -> str:
    """The status once Tune's fit returned: "interrupted" if trials are missing or
    unfinished (Tune turns a first Ctrl-C into a graceful stop and returns normally),
    else "finished". A spent epoch budget finishes the run, and ends the trials Tune
    stopped without telling callbacks."""
    unfinished = recorder.trial_count < total or bool(recorder.records)
    spent = budget_stop is not None and budget_stop.spent()
    if spent:
        recorder.end_running_trials()
    return "interrupted" if unfinished and not spent else "finished"


class ConstraintStop(tune.Stopper):
    """Stops a trial once a cost it reports breaks a constraint (a sweep's own
    trainable reporting params, or any trial's latency_ms or train_s): it is
    infeasible, and never ranked; training on would be spent for nothing."""

    def __init__(self, limits: dict[str, float]) -> None:
        self.limits = limits

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(violations(result, self.limits))

    def stop_all(self) -> bool:
        return False


class EpochLimit(tune.Stopper):
    """A sweep's own trainable, which may report for as long as it likes, stops at
    the budget's epochs (the built-in trainers stop there themselves)."""

    def __init__(self, max_epochs: int) -> None:
        self.max_epochs = max_epochs

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(result.get(TIME_ATTR, 0) >= self.max_epochs)

    def stop_all(self) -> bool:
        return False


def _stopper(p: RunPlan, budget_stop: EpochBudget | None) -> tune.Stopper | None:
    """The budget's stop, the constraints' and a sweep's own trainable's stop at the
    budget's epochs, those that apply. A built-in trainer is judged on the start
    constraints once, when it starts (Task.run_trial), not again on a resume."""
    limits = p.constraints if p.sweep.runs_function else \
        {k: v for k, v in p.constraints.items() if k not in START_CONSTRAINTS}
    stops: list[tune.Stopper] = [stop for stop in (
        EpochLimit(p.budget.max_epochs) if p.sweep.runs_function else None,
        ConstraintStop(limits) if limits else None,
        budget_stop) if stop is not None]
    return None if not stops else stops[0] if len(stops) == 1 else CombinedStopper(*stops)


def _tuner(p: RunPlan, data: TrialData | None, run_dir: Location, callbacks: list[tune.Callback],
           stop: tune.Stopper | None, restore: bool,
           journal: StudyJournal | None) -> tune.Tuner:
    from pipelines.search.searchers import build_searcher
    from pipelines.search.warm_start import load_warm_start
    from pipelines.tuning.trainable import TrialSetup, run_trial

    options, budget = p.options, p.budget
    in_process = p.ref is None and p.sweep.runs_function  # no module to import: pickle it
    setup = TrialSetup(p.sweep.task_name, data, threads=max(1, int(options.cpus_per_trial)),
                       carried=p.carried, sweep=p.ref,
                       function=p.sweep.trainable if in_process else None,
                       config_class=p.sweep.config_class if in_process else None,
                       metric=p.sweep.primary_metric, objectives=p.sweep.objectives,
                       limits={k: v for k, v in p.constraints.items()
                               if k in START_CONSTRAINTS})
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    {"cpu": options.cpus_per_trial,
                                     "gpu": options.gpus_per_trial})
    storage = run_dir.tune_storage()
    if restore:
        return _restored_tuner(run_dir, trainable, callbacks, stop,
                               storage.get("storage_filesystem"), journal)
    warm = None
    if options.warm_start:  # checked by plan(); filtered here against the final domains
        warm = load_warm_start(options.warm_start, p.sweep, p.algo, p.param_space)
        print(warm.summary(), file=sys.stderr, flush=True)
    sweep, several = p.sweep, p.sweep.multi_objective
    metrics, modes = [m for m, _ in sweep.objectives], [m for _, m in sweep.objectives]
    # several objectives: the searcher gets them all, the scheduler the first, and Tune's
    # own config none (it would hand its one metric to the searcher in their place)
    stops_on: dict[str, Any] = {"metric": sweep.primary_metric, "mode": sweep.primary_mode}
    return tune.Tuner(
        trainable,
        param_space=p.param_space,
        tune_config=tune.TuneConfig(
            **({} if several else stops_on), num_samples=p.num_samples,
            reuse_actors=True,
            search_alg=build_searcher(p.algo, metric=metrics if several else metrics[0],
                                      mode=modes if several else modes[0],
                                      seed=options.seed, num_samples=p.num_samples,
                                      limits=p.constraints, warm_start=warm,
                                      journal=journal),
            scheduler=build_scheduler(options.scheduler, max_epochs=budget.max_epochs,
                                      grace_period=budget.grace_period,
                                      reduction_factor=budget.reduction_factor,
                                      **(stops_on if several else {})),
            max_concurrent_trials=options.max_concurrent,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR, **storage, verbose=0, callbacks=callbacks, stop=stop,
            checkpoint_config=CHECKPOINTS,
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
        ),
    )


def trial_dirname(trial: Trial) -> str:
    """A trial's directory: its id. A module's function, not a lambda: Tune pickles
    it into every trial's saved state (a lambda by value, ~1.2 KB each)."""
    return str(trial.trial_id)


def _restored_tuner(run_dir: Location, trainable: Callable[..., Any],
                    callbacks: list[tune.Callback], stop: tune.Stopper | None,
                    filesystem: pafs.FileSystem | None,
                    journal: StudyJournal | None) -> tune.Tuner:
    try:
        tuner = tune.Tuner.restore((run_dir / TUNE_DIR).path, trainable,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False, storage_filesystem=filesystem)
    except ModuleNotFoundError as e:  # Tune's pickles name our classes by module path
        if not (e.name or "").startswith(("pipelines.", "models.")):
            raise
        raise UsageError(f"{run_dir} was started by a raysweep whose modules were laid out "
                         f"differently (its saved state needs {e.name}); resume it with the "
                         f"version that started it") from None
    # Tune restores the run config pickled at the start, callbacks included; ours are
    # this driver's (they write to this run_dir), and get their state from the snapshot.
    local_tuner = tuner._local_tuner
    assert local_tuner is not None  # None only under Ray Client, which plan() refuses
    run_config = local_tuner.get_run_config()
    run_config.callbacks, run_config.stop = callbacks, stop
    _set_journal(local_tuner._tune_config.search_alg, journal)  # no public getter
    return tuner


def _set_journal(search_alg: object, journal: StudyJournal | None) -> None:
    """The restored Optuna searcher's study continues in this driver's journal
    (where the run directory is now), set before Tune restores its state."""
    inner = getattr(search_alg, "searcher", search_alg)  # ConcurrencyLimiter, TimedSearcher
    inner = getattr(inner, "searcher", inner)
    if isinstance(inner, ConstrainedOptunaSearch):
        inner.journal = journal


def print_leaderboard(run_dir: Location, p: RunPlan) -> None:
    """The run's best trials and how its trials stopped, on stdout."""
    trials = res.read_parquet(run_dir / "trials.parquet")
    metric = p.sweep.primary_metric
    top = leaderboard(trials, metric, p.sweep.primary_mode)
    table = leaderboard_table(top, metric, p.sweep.space,
                              columns=objective_columns(p.sweep.objectives)[1:])
    print(f"\ntop {len(top)} of {len(trials)} trials by {metric}:")
    print(format_table(table))
    # trials an interrupted run left unfinished have no stop reason, and are not counted
    print("stop reasons: " + stop_reason_summary(trials.dropna(subset=["stop_reason"])))
