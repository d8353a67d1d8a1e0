"""Winners you can trust: `--confirm K --confirm-seeds S` retrains a finished
search's top K configurations with S fresh seeds each, at the full epoch budget
and on the search's data split, and records every retrain's score.

The retrains are one Tune experiment in `<run>/confirm/` (a grid over
configuration and seed, no early stopping), with its own run.json, trials.parquet
and epochs.parquet, so an interrupted confirm resumes like a stage of a staged
run. Its result is `<run>/confirm.parquet` (a row per retrain; see
pipelines.analysis.confirmation) and a `confirm` entry in the run's run.json:
{k, seeds, seed_values, trial_ids, status}.

The configurations are the top K *distinct* ones (their seed aside) in the order
the leaderboard ranks the search's trials. Every configuration is retrained with
the same seeds (paired: a difference between two configurations is not a
difference of seeds), seeds that no search trial had. A fresh seed changes only
what the trainer seeds with it (the built-in trainers: weights, batch order,
augmentation; the split is the run's); a sweep's own trainable whose config has
no `seed` key cannot be reseeded, and --confirm refuses it.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pandas as pd
import pyarrow.fs as pafs
from ray import tune

from pipelines.analysis.confirmation import (
    CONFIDENCE,
    CONFIRM_COLUMNS,
    CONFIRM_FILE,
    summarise,
    verdict,
)
from pipelines.analysis.ranking import format_table, leaderboard
from pipelines.analysis.runs import config_of, int_config_keys
from pipelines.errors import RunInterrupted, UsageError
from pipelines.records import tables as res
from pipelines.records.run_record import now_iso, run_status
from pipelines.records.storage import Location
from pipelines.search.space import describe
from pipelines.search.sweep import CARRIED_KEY
from pipelines.tuning.experiment import execute_experiment
from pipelines.tuning.resume_checks import has_tune_state

if TYPE_CHECKING:
    from pipelines.search.sweep import Sweep
    from pipelines.tuning.run_plan import RunOptions, RunPlan
    from pipelines.tuning.trainable import TrialData

__all__ = ["CONFIRM_DIR", "SEED_OFFSET", "check_options", "check_scored", "confirm_plan",
           "execute", "fresh_seeds", "print_summary", "request", "top_configurations"]

CONFIRM_DIR = "confirm"  # the retrains' Tune experiment, inside the run directory
SEED_OFFSET = 10_000  # the retrains' seeds start this far above the run's --seed
Picked = tuple[str, dict[str, Any]]  # a search trial's id and its configuration, seed aside


def check_options(options: RunOptions, sweep: Sweep) -> None:
    """--confirm, --confirm-seeds and --run, checked before anything is written (the
    runner calls this right after planning: run_plan cannot import this module, which
    runs experiments that import run_plan)."""
    if options.confirm is not None and options.confirm < 1:
        raise UsageError(f"--confirm must be >= 1 (the top K configurations to retrain), got "
                         f"{options.confirm}; drop --confirm to skip the confirm phase")
    if options.confirm_seeds < 1:
        raise UsageError(f"--confirm-seeds must be >= 1, got {options.confirm_seeds}")
    if options.run is not None and options.confirm is None:
        raise UsageError("--run RUN_DIR names the finished run that --confirm retrains; add "
                         "--confirm K, or drop --run")
    keys = sweep.config_keys()
    if options.confirm is not None and keys is not None and "seed" not in keys:
        raise UsageError(f"--confirm retrains with fresh seeds, and {options.sweep}'s config "
                         f"has no 'seed' field; add `seed: int = 0` to its config class and "
                         f"seed the trainable with it, or drop --confirm")


def request(metadata: Mapping[str, Any], k: int, seeds: int, run_dir: Location) -> str:
    """What `--confirm k --confirm-seeds seeds` on a run asks, by its run.json: "new"
    (a finished run not confirmed yet), "resume" (a confirm interrupted) or "done"
    (confirmed already with these k and seeds); a UsageError for a run whose search
    is unfinished, or one confirmed with other k or seeds."""
    entry = _begun(metadata, run_dir)
    if entry is None:
        status = metadata.get("status")
        if status != "finished":
            raise UsageError(f"{run_dir} is {status}, not a finished run; finish it with "
                             f"--resume {run_dir}, then --confirm it")
        return "new"
    if (entry["k"], entry["seeds"]) != (k, seeds):
        state = "was confirmed" if entry["status"] == "finished" else "has a confirm begun"
        raise UsageError(f"{run_dir} {state} with --confirm {entry['k']} --confirm-seeds "
                         f"{entry['seeds']}; run those to see it (or finish it), or delete "
                         f"{run_dir / CONFIRM_DIR} and {run_dir / CONFIRM_FILE} to confirm "
                         f"it anew")
    return "done" if entry["status"] == "finished" else "resume"


def _begun(metadata: Mapping[str, Any], run_dir: Location) -> dict[str, Any] | None:
    """run.json's confirm entry, if that confirm left anything behind (its retrains'
    directory or confirm.parquet); None if not, or if the user deleted both."""
    entry = metadata.get("confirm")
    if entry is None or not ((run_dir / CONFIRM_DIR).exists()
                             or (run_dir / CONFIRM_FILE).is_file()):
        return None
    return dict(entry)


def fresh_seeds(run_seed: int, used: Iterable[int], n: int) -> list[int]:
    """`n` seeds from run_seed + SEED_OFFSET up, none of them in `used` (the search
    trials' seeds): the same seeds for the same run."""
    taken = set(used)
    candidates = (s for s in itertools.count(run_seed + SEED_OFFSET) if s not in taken)
    return list(itertools.islice(candidates, n))


def top_configurations(trials: pd.DataFrame, metric: str, mode: str, k: int,
                       space: Mapping[str, dict]) -> list[Picked]:
    """The k best distinct configurations (their seed aside), ranked as the
    leaderboard ranks the trials, each with the id of its best trial; fewer if
    the run has fewer."""
    column = res.objective_column(metric)
    if column not in trials:  # no trial reported yet
        return []
    scored = trials.dropna(subset=[column])
    int_keys = int_config_keys(trials, space)
    picked: list[Picked] = []
    for _, row in leaderboard(scored, metric, mode, n=len(scored)).iterrows():
        config = _without_seed(config_of(row, int_keys))
        if all(config != other for _, other in picked):
            picked.append((str(row["trial_id"]), config))
        if len(picked) == k:
            break
    return picked


def check_scored(p: RunPlan, run_dir: Location) -> None:
    """A UsageError, before anything is written, if no trial of the finished run in
    `run_dir` has a score to rank by."""
    trials = res.read_parquet(run_dir / "trials.parquet") \
        if (run_dir / "trials.parquet").is_file() else pd.DataFrame()
    if not top_configurations(trials, p.sweep.primary_metric, p.sweep.primary_mode, 1, {}):
        raise _nothing_to_confirm(run_dir, p.sweep.primary_metric)


def _nothing_to_confirm(run_dir: Location, metric: str) -> UsageError:
    return UsageError(f"{run_dir}: no feasible trial of the search has a {metric} score, so "
                      f"there is nothing to confirm; its search results stay there")


def _without_seed(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "seed"}


def _picked_again(trials: pd.DataFrame, trial_ids: list[str],
                  space: Mapping[str, dict]) -> list[Picked]:
    """The configurations a confirm begun earlier picked (run.json's trial_ids)."""
    int_keys = int_config_keys(trials, space)
    rows = {str(row["trial_id"]): row for _, row in trials.iterrows()}
    return [(tid, _without_seed(config_of(rows[tid], int_keys))) for tid in trial_ids]


def confirm_plan(p: RunPlan, configs: list[dict[str, Any]], seeds: list[int]) -> RunPlan:
    """The retrains as a plan: a grid over (configuration, seed), each run for the
    budget's max_epochs with no early stopping, on the primary metric."""
    param_space: dict[str, Any] = {CARRIED_KEY: tune.grid_search(list(range(len(configs)))),
                                   "seed": tune.grid_search(list(seeds))}
    if any("epochs" in config for config in configs):  # the horizon, for every retrain
        param_space["epochs"] = p.budget.max_epochs
    options = dataclasses.replace(
        p.options, algo="grid", scheduler="none", num_samples=None, epoch_budget=None,
        lr_range=None, keep_checkpoints=0,  # a finished retrain's checkpoint is not needed
        confirm=None, run=None, resume=None)
    sweep = dataclasses.replace(p.sweep, stages=(), metric=p.sweep.primary_metric,
                                mode=p.sweep.primary_mode)
    return dataclasses.replace(p, options=options, sweep=sweep, algo="grid", num_samples=1,
                               param_space=param_space, fixed={}, carried=tuple(configs),
                               trials=len(configs) * len(seeds))


def execute(p: RunPlan, data: TrialData | None, run_dir: Location, *, k: int, seeds: int,
            fields: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Confirm the finished search in `run_dir` (or finish a confirm begun): retrain,
    write confirm.parquet, print the summary; returns confirm.parquet's rows.
    `fields` go into run.json too (a resume's time)."""
    metadata = {**res.read_json(run_dir / "run.json"), **(fields or {})}
    trials = res.read_parquet(run_dir / "trials.parquet")
    metric, mode = p.sweep.primary_metric, p.sweep.primary_mode
    space = metadata.get("space") or describe(p.sweep.space)
    begun = _begun(metadata, run_dir)
    if begun:  # what it picked then, not picked again
        picked, seed_values = _picked_again(trials, begun["trial_ids"], space), \
            list(begun["seed_values"])
    else:
        picked = top_configurations(trials, metric, mode, k, space)
        if not picked:
            raise _nothing_to_confirm(run_dir, metric)
        used = trials["config/seed"].dropna().astype(int) if "config/seed" in trials else ()
        seed_values = fresh_seeds(p.options.seed, [p.options.seed, *used], seeds)
    entry = {"k": k, "seeds": seeds, "seed_values": seed_values,
             "trial_ids": [tid for tid, _ in picked], "status": "running"}
    where = run_dir / CONFIRM_DIR
    with run_status({**metadata, "confirm": entry}, run_dir) as record:
        try:
            if _status(where) != "finished":
                _retrain(p, data, where, picked, seed_values, record.metadata)
            table = confirm_table(res.read_parquet(where / "trials.parquet"), picked, metric)
            res.write_parquet(table, run_dir / CONFIRM_FILE)
        except BaseException as e:
            stopped = isinstance(e, (RunInterrupted, KeyboardInterrupt))
            record.metadata = {**record.metadata, "confirm": {
                **entry, "status": "interrupted" if stopped else "failed"}}
            raise
        record.metadata = {**record.metadata, "confirm": {**entry, "status": "finished"}}
        record.status = "finished"
    print_summary(table, metric, mode, list(space))
    return table


def _retrain(p: RunPlan, data: TrialData | None, where: Location, picked: list[Picked],
             seed_values: list[int], metadata: dict[str, Any]) -> None:
    """Run (or finish: its Tune state is there) the retrains' experiment in `where`."""
    restore = has_tune_state(where)
    if not restore:  # no retrain ever started: start it over
        if where.fs.get_file_info(where.path).type != pafs.FileType.NotFound:
            where.fs.delete_dir(where.path)
        where.fs.create_dir(where.path, recursive=True)
    cp = confirm_plan(p, [config for _, config in picked], seed_values)
    verb = "resuming" if restore else "retraining"
    print(f"\nconfirm: {verb} the top {len(picked)} configurations with {len(seed_values)} "
          f"fresh seeds each ({', '.join(map(str, seed_values))}), {p.budget.max_epochs} "
          f"epochs, no early stopping", file=sys.stderr, flush=True)
    execute_experiment(cp, data, where, _confirm_metadata(metadata, cp, seed_values),
                       restore=restore, show_leaderboard=False)


def _status(where: Location) -> str | None:
    if not (where / "run.json").is_file():
        return None
    return res.read_json(where / "run.json").get("status")


def _confirm_metadata(metadata: dict[str, Any], cp: RunPlan,
                      seed_values: list[int]) -> dict[str, Any]:
    """confirm/run.json: the run's, as the retrains' experiment runs it."""
    dropped = ("stages", "stage_results", "confirm", "final", "lr_range")
    return {**{k: v for k, v in metadata.items() if k not in dropped},
            "algorithm": "grid", "scheduler": "none", "metric": cp.sweep.metric,
            "mode": cp.sweep.mode, "carried": list(cp.carried), "seed_values": seed_values,
            "start_time": now_iso(),
            "budget": {**metadata.get("budget", {}), "num_samples": cp.num_samples}}


def confirm_table(retrains: pd.DataFrame, picked: list[Picked], metric: str) -> pd.DataFrame:
    """confirm.parquet from the retrains' trials.parquet: a row per retrain, its
    configuration's rank and search trial, seed, score and epochs, and the
    configuration's config/ columns (its seed aside)."""
    column = res.objective_column(metric)
    int_keys = int_config_keys(retrains, {})
    rows = []
    for _, row in retrains.iterrows():
        config = config_of(row, int_keys)
        seed = config.pop("seed")
        rank = _rank_of(config, [c for _, c in picked])
        rows.append({"config_rank": rank, "trial_id": picked[rank - 1][0], "seed": seed,
                     "score": row[column], "epochs": row["epochs"],
                     "retrain_id": row["trial_id"],
                     **{res.CONFIG_PREFIX + key: value for key, value in config.items()}})
    columns = list(CONFIRM_COLUMNS) + sorted({c for r in rows for c in r
                                              if c.startswith(res.CONFIG_PREFIX)})
    frame = pd.DataFrame(rows, columns=columns).astype(CONFIRM_COLUMNS)
    return frame.sort_values(["config_rank", "seed"], kind="stable").reset_index(drop=True)


def _rank_of(config: Mapping[str, Any], configs: list[dict[str, Any]]) -> int:
    """Which of `configs` (from 1) a retrain ran: its values on top of that
    configuration (the horizon, `epochs`, set again)."""
    for rank, base in enumerate(configs, start=1):
        if all(config.get(key) == value for key, value in base.items() if key != "epochs"):
            return rank
    raise ValueError(f"a retrain's configuration {config} is none of those confirmed")


def print_summary(confirm: pd.DataFrame, metric: str, mode: str,
                  config_keys: Iterable[str]) -> None:
    """Per configuration, mean ± sd and the 95% interval of its retrains' scores,
    and the verdict line, on stdout."""
    summary = summarise(confirm, mode)
    keys = [k for k in config_keys if res.CONFIG_PREFIX + k in summary]
    shown = pd.DataFrame({
        "rank": summary["config_rank"], "trial_id": summary["trial_id"], "n": summary["n"],
        f"{metric} mean ± sd": [f"{m:.4g} ± {s:.2g}" for m, s in zip(summary["mean"],
                                                                     summary["sd"])],
        f"{CONFIDENCE:.0%} interval": [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in
                                       zip(summary["ci_low"], summary["ci_high"])],
        **{k: summary[res.CONFIG_PREFIX + k] for k in keys}})
    seeds = int(confirm.groupby("config_rank")["seed"].nunique().max()) if len(confirm) else 0
    top = "the top configuration" if len(summary) == 1 else \
        f"the top {len(summary)} configurations"
    print(f"\nconfirmed: {top}, {seeds} fresh seed{'s' if seeds != 1 else ''} each, by "
          f"{metric} ({mode}; rank: in the search):")
    print(format_table(shown))
    print(verdict(summary, mode))
