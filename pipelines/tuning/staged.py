"""Staged tuning: a sweep's stages run one after another in one run directory.

Each stage is an ordinary Tune experiment in `<run>/stages/<n>-<name>/` that
searches only its own parameters; every other parameter holds the best
configuration found so far (or one of the top k). The run directory's
`trials.parquet` and `epochs.parquet` hold every stage's rows with a `stage`
column. A stage whose run.json says "finished" is never run again, so
`--resume` continues at the first unfinished stage.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.fs as pafs
from ray import tune

from pipelines.analysis.ranking import format_table, leaderboard, stage_table
from pipelines.analysis.runs import config_of, int_config_keys
from pipelines.records import tables as res
from pipelines.records.run_record import now_iso, run_status
from pipelines.records.storage import Location
from pipelines.search.space import compile_space, describe
from pipelines.search.sweep import CARRIED_KEY, Stage, start_values
from pipelines.tuning.experiment import execute_experiment, print_leaderboard
from pipelines.tuning.resume_checks import has_tune_state

if TYPE_CHECKING:
    from pipelines.tuning.run_plan import RunPlan
    from pipelines.tuning.trainable import TrialData

STAGES_DIR = "stages"
STAGE_COLUMN = "stage"


def stage_dir(run_dir: Location, index: int, stage: Stage) -> Location:
    """Where stage `index` (from 1) runs: <run>/stages/<index>-<name>."""
    return run_dir / STAGES_DIR / f"{index}-{stage.name}"


def stage_plan(p: RunPlan, index: int, stage: Stage,
               carried: tuple[dict[str, Any], ...]) -> RunPlan:
    """The plan of one stage: its own parameters searched, the carried configuration(s)
    fixed. With several carried, which one a trial builds on is searched too."""
    algo = stage.algo or p.options.algo or p.sweep.default_algo
    space = {name: p.sweep.space[name] for name in stage.params}
    fixed = {k: v for k, v in p.fixed.items() if k not in carried[0]}
    num_samples = stage.quick_num_samples if p.options.quick else stage.num_samples
    compiled = compile_space(space, algo, fixed, num_samples, p.options.seed)
    param_space, trials = compiled.param_space, compiled.trials
    if len(carried) > 1:
        indices = list(range(len(carried)))
        param_space[CARRIED_KEY] = (tune.grid_search(indices) if algo == "grid"
                                    else tune.choice(indices))
        trials *= len(carried) if algo == "grid" else 1
    # the searcher's seed differs per stage; the trials' seed (in `fixed`) does not
    options = dataclasses.replace(p.options, seed=p.options.seed + index - 1)
    return dataclasses.replace(p, options=options, algo=algo,
                               num_samples=compiled.num_samples, param_space=param_space,
                               trials=trials,
                               sweep=dataclasses.replace(p.sweep, space=space, stages=()),
                               fixed={**fixed, **carried[0]}, carried=carried)


def execute(p: RunPlan, data: TrialData | None, run_dir: Location,
            metadata: dict[str, Any]) -> None:
    """Run (or finish) every stage in order; the per-stage table ends the run."""
    summaries: list[dict[str, Any]] = []
    with run_status(metadata, run_dir) as record:
        start = start_values(p.sweep.space, p.sweep.config_class)
        carried: tuple[dict[str, Any], ...] = (start,)
        for index, stage in enumerate(p.sweep.stages, start=1):
            if _status(stage_dir(run_dir, index, stage)) != "finished":
                carried = _run_stage(p, data, run_dir, index, stage, carried, record.metadata)
            merged = merge_results(run_dir, p.sweep.stages)
            # the pool so far: this stage and the ones before it, never a later one's
            # partial results (on a resume they exist already)
            so_far = merged[merged[STAGE_COLUMN].isin([s.name for s in
                                                       p.sweep.stages[:index]])] \
                if not merged.empty else merged
            before, carried = carried, top_configs(so_far, p, stage.top_k) or carried
            summaries.append(stage_summary(index, stage, so_far, p, before, carried))
            record.update(stage_results=summaries)
        record.status = "finished"
    print_stage_table(summaries, p.sweep.primary_metric)
    print_leaderboard(run_dir, p)


def _run_stage(p: RunPlan, data: TrialData | None, run_dir: Location, index: int, stage: Stage,
               carried: tuple[dict[str, Any], ...],
               metadata: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Run (or finish) one unfinished stage; returns the configurations it built on."""
    where = stage_dir(run_dir, index, stage)
    restore = has_tune_state(where)
    if restore:  # its trials were built on these; a resume must not change them
        carried = _recorded_carried(where, carried)
    else:
        _fresh_dir(where)
    sp = stage_plan(p, index, stage, carried)
    _announce(index, len(p.sweep.stages), stage, sp, restore)
    execute_experiment(sp, data, where, _stage_metadata(metadata, sp, stage),
                       restore=restore, show_leaderboard=False,
                       after_persist=lambda: merge_results(run_dir, p.sweep.stages),
                       study_name=f"{p.sweep_name}/{run_dir.name}/{index}-{stage.name}",
                       journal_dir=run_dir)
    return carried


def _status(where: Location) -> str | None:
    if not (where / "run.json").is_file():
        return None
    return res.read_json(where / "run.json").get("status")


def _recorded_carried(where: Location,
                      computed: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The configurations a stage's trials were started on (its run.json)."""
    recorded = res.read_json(where / "run.json").get("carried")
    return tuple(recorded) if recorded else computed


def _fresh_dir(where: Location) -> None:
    """A stage that never started a trial has no results: start it over."""
    if where.fs.get_file_info(where.path).type != pafs.FileType.NotFound:
        where.fs.delete_dir(where.path)
    where.fs.create_dir(where.path, recursive=True)


def _announce(index: int, total: int, stage: Stage, sp: RunPlan, restore: bool) -> None:
    carried = f", {len(sp.carried)} configurations carried" if len(sp.carried) > 1 else ""
    verb = "resuming" if restore else "searching"
    print(f"\nstage {index}/{total} {stage.name}: {verb} {', '.join(stage.params)} "
          f"({sp.algo}{carried})", file=sys.stderr, flush=True)


def _stage_metadata(metadata: dict[str, Any], sp: RunPlan, stage: Stage) -> dict[str, Any]:
    return {**{k: v for k, v in metadata.items() if k not in ("stages", "stage_results")},
            "stage": dataclasses.asdict(stage), "algorithm": sp.algo,
            "space": describe(sp.sweep.space), "fixed": sp.fixed,
            "carried": list(sp.carried), "start_time": now_iso(),
            "budget": {**metadata["budget"], "num_samples": sp.num_samples}}


def merge_results(run_dir: Location, stages: tuple[Stage, ...]) -> pd.DataFrame:
    """Every stage's trials and epochs, with a `stage` column, into the run's
    own Parquet files; returns the trials."""
    trials: list[pd.DataFrame] = []
    epochs: list[pd.DataFrame] = []
    for index, stage in enumerate(stages, start=1):
        where = stage_dir(run_dir, index, stage)
        if not (where / "trials.parquet").is_file():
            continue
        for frames, name in ((trials, "trials.parquet"), (epochs, "epochs.parquet")):
            frame = res.read_parquet(where / name)
            frame.insert(0, STAGE_COLUMN, pd.Series([stage.name] * len(frame), dtype="string"))
            frames.append(frame)
    if not trials:
        return pd.DataFrame()
    merged = pd.concat(trials, ignore_index=True)
    res.write_parquet(merged, run_dir / "trials.parquet")
    res.write_parquet(pd.concat(epochs, ignore_index=True), run_dir / "epochs.parquet")
    return merged


def top_configs(trials: pd.DataFrame, p: RunPlan, k: int) -> tuple[dict[str, Any], ...]:
    """The k best distinct configurations (of the space's parameters) so far."""
    if trials.empty:
        return ()
    scored = trials.dropna(subset=[f"best_{p.sweep.primary_metric}"])
    int_keys = int_config_keys(scored, describe(p.sweep.space))
    configs: list[dict[str, Any]] = []
    ranked = leaderboard(scored, p.sweep.primary_metric, p.sweep.primary_mode, n=len(scored))
    for _, row in ranked.iterrows():
        config = {name: value for name, value in config_of(row, int_keys).items()
                  if name in p.sweep.space}
        if config not in configs:
            configs.append(config)
        if len(configs) == k:
            break
    return tuple(configs)


def stage_summary(index: int, stage: Stage, trials: pd.DataFrame, p: RunPlan,
                  before: tuple[dict[str, Any], ...],
                  after: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """One stage's row of run.json's stage_results and of the stage table."""
    metric = f"best_{p.sweep.primary_metric}"
    ours = trials[trials[STAGE_COLUMN] == stage.name] if not trials.empty else trials
    best = (max if p.sweep.primary_mode == "max" else min)
    scores = ours[metric].dropna() if not ours.empty else pd.Series(dtype=float)
    all_scores = trials[metric].dropna() if not trials.empty else pd.Series(dtype=float)
    changed = {name: [before[0].get(name), value] for name, value in after[0].items()
               if before[0].get(name) != value}
    return {"stage": index, "name": stage.name, "params": list(stage.params),
            "trials": len(ours), "epochs": int(ours["epochs"].sum()) if len(ours) else 0,
            "best_in_stage": best(scores) if len(scores) else None,
            "best_so_far": best(all_scores) if len(all_scores) else None,
            "best_config": after[0], "changed": changed}


def print_stage_table(summaries: list[dict[str, Any]], metric: str) -> None:
    """The per-stage table, on stdout."""
    print("\nstages:")
    print(format_table(stage_table(summaries, metric)))

