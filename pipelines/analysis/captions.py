"""The captions of the report's figures: what each shows and how to read it."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pipelines.analysis.figures import (
    EVALUATOR_NAMES,
    MAX_CURVES_PER_LABEL,
    RUNG_SCHEDULERS,
    rung_epochs,
)
from pipelines.analysis.formatting import comma_list
from pipelines.analysis.objectives import constraint_names, objective_names
from pipelines.analysis.runs import Run, built_in_trainer, run_names
from pipelines.records import diagnosis


def lr_schedule_caption(run: Run) -> str:
    """The learning-rate figure's caption; the built-in trainers' lr scaling where it applies."""
    what = ("The learning rate the optimizer used in the last step of each epoch (the "
            "searched lr is per 256 examples; this is after scaling by batch size and the "
            "schedule)" if built_in_trainer(run.trials)
            else "The learning rate (lr) the trainer reported for each epoch")
    return f"{what}, for the best trial, with the other trials in grey."


def learning_curves_caption(run: Run) -> str:
    """The learning curves' caption, naming the scheduler's rungs where it has them."""
    text = (f"{run.metric} after each epoch, one line per trial, coloured by why the trial "
            f"stopped (running: not finished yet); the best trial in black.")
    rungs = rung_epochs(run.meta)
    if rungs:
        text += (f" Dotted lines: {RUNG_SCHEDULERS[run.meta['scheduler']]}'s rungs (epochs "
                 f"{comma_list(rungs)}), where trials are compared and the "
                 f"lower-ranked ones stopped.")
    return text


def loss_diagnosis_caption() -> str:
    """The caption of the training-loss curves coloured by each trial's diagnosis."""
    return (f"The training loss of each trial's step windows (the mean per example over about "
            f"a tenth of an epoch; steps.parquet) against epochs, coloured by what the curve "
            f"says of the learning rate (the rule is above). Log y axis, cut at "
            f"{diagnosis.DIVERGED_RATIO:g} times the median start; a cross marks where a "
            f"diverged curve ends or leaves the plot. At most {MAX_CURVES_PER_LABEL} curves of "
            f"each label are drawn, spread over the lr, where more trials got it (the legend "
            f"says how many).")


def metric_vs_params_caption(metric: str) -> str:
    """The caption of the scatter plots of the best score against each parameter."""
    return (f"Each trial's best {metric} against each searched hyperparameter (log axis for "
            f"log-uniform ones; categories spread sideways so points do not hide each other). "
            f"Early-stopped trials trained fewer epochs, which alone makes their score worse. "
            f"The ring marks the best trial.")


def parallel_coordinates_caption(metric: str) -> str:
    """The parallel coordinates' caption."""
    return (f"One line per scored trial through its value of each hyperparameter (each axis "
            f"spans the searched range, in log scale for log-uniform ones) to its best {metric}; "
            f"coloured by best {metric} (yellow: best), the best trial thickest.")


def pareto_front_caption(run: Run) -> str:
    """The caption of the scatter plots of every pair of objectives."""
    text = (f"Every trial on each pair of the objectives ({objective_names(run.objectives)}), "
            f"coloured by why it stopped. Ringed: the Pareto front, the feasible trials that "
            f"no other feasible trial beats on every objective at once; the step line joins "
            f"them and bounds what they dominate")
    if len(run.objectives) > 2:
        text += (" (on a panel, it joins those of them that no other front trial beats on "
                 "that panel's two objectives)")
    text += (". A trial lacking one of a panel's values sits on that axis's edge, at its "
             "worse end.")
    if run.constraints:
        text += (f" Crosses: infeasible trials, over a constraint's limit "
                 f"({constraint_names(run.constraints)}, dashed where it is an axis), never "
                 f"ranked; those over a size or memory limit trained no epoch, so have no "
                 f"score.")
    return text


def importance_caption(importances: Mapping[str, pd.Series | None], metric: str) -> str:
    """The importance figure's caption: the evaluators, and the budget they compared at."""
    names = " and ".join(EVALUATOR_NAMES.get(k, k) for k in importances)
    attrs = next((v.attrs for v in importances.values() if v is not None and len(v)), {})
    if attrs.get("epoch") is not None:
        basis = (f"the best {metric} up to epoch {attrs['epoch']}, over the {attrs['trials']} "
                 f"trials that trained that long (one budget for all, so that training "
                 f"length does not pass for a hyperparameter's effect)")
    elif attrs:  # no epochs: each trial's best score, however long it trained
        basis = (f"each trial's best {metric} (the {attrs['trials']} scored trials; no "
                 f"epochs to compare them at one budget)")
    else:
        basis = f"best {metric}"
    return (f"Share of the variation in {basis} that {names} attribute to each "
            f"hyperparameter. With few trials these are rough estimates, and evaluators can "
            f"disagree.")


def best_so_far_caption(runs: list[Run]) -> str:
    """The best-so-far caption, warning of runs whose epochs carry no timestamps."""
    text = (f"The best {runs[0].metric} found so far against the training epochs of all "
            f"trials together, and against wall time since the run's first epoch began.")
    untimed = [n for n, r in zip(run_names(runs), runs) if not _timed(r.epochs)]
    if untimed:
        text += (f" {comma_list(untimed)}: written before epochs carried timestamps, so its "
                 f"epochs are ordered by trial id, not by time, and its wall time adds "
                 f"epoch times as if trials ran one at a time.")
    return text


def _timed(epochs: pd.DataFrame) -> bool:
    """Whether every epoch carries its end time (runs before `ended_at` do not)."""
    return epochs.empty or ("ended_at" in epochs and bool(epochs["ended_at"].notna().all()))
