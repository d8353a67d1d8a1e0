"""Each trial's best score against each searched hyperparameter, a grid of scatter plots."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from pipelines.analysis.figures.canvas import figure, note, robust_ylim, save
from pipelines.analysis.figures.param_axes import param_positions, set_param_xaxis
from pipelines.analysis.figures.style import (
    CONFIG_UNITS,
    STOP_COLORS,
    run_title,
    stop_reason_handles,
)
from pipelines.analysis.figures.trials import (
    best_trial_id,
    column,
    scored_trials,
    trial_stop_reasons,
)
from pipelines.analysis.ranking import stop_reasons
from pipelines.analysis.runs import built_in_trainer
from pipelines.records.tables import CONFIG_PREFIX

PANELS_PER_ROW = 4  # at most; rows are filled evenly


def plot_metric_vs_params(trials: pd.DataFrame, meta: dict, path: str | Path) -> Path:
    """A grid of scatter plots: each trial's best score against each searched
    hyperparameter (log axis for log domains, jittered categories for Choice)."""
    metric, space = meta["metric"], meta.get("space", {})
    score = f"best_{metric}"
    title = f"Best {metric} against each searched hyperparameter\n{run_title(meta)}"
    scored = scored_trials(trials, metric)
    if not space or scored.empty:
        fig, (ax,) = figure(7, 3.5)
        fig.suptitle(title)
        note(ax, "no searched hyperparameters" if not space else "no scored trials yet")
        return save(fig, path)
    nrows = math.ceil(len(space) / PANELS_PER_ROW)
    ncols = math.ceil(len(space) / nrows)
    fig, axes = figure(max(3.2 * ncols, 6.5), 2.7 * nrows + 1.2, nrows, ncols, sharey=True)
    fig.suptitle(title)
    colors = [STOP_COLORS[str(r)] for r in stop_reasons(scored)]
    best = (scored["trial_id"] == best_trial_id(trials, meta)).to_numpy()
    units = CONFIG_UNITS if built_in_trainer(trials) else {}  # a user's lr has its own units
    for i, (ax, (name, spec)) in enumerate(zip(axes, space.items())):
        x = param_positions(column(scored, CONFIG_PREFIX + name), spec, jitter=True)
        ax.scatter(x, scored[score], c=colors, s=22, alpha=0.85, edgecolors="none")
        ax.scatter(x[best], scored[score][best], s=110, facecolors="none",
                   edgecolors="black", linewidths=1.4)
        set_param_xaxis(ax, name, spec, units)
        if i % ncols == 0:
            ax.set_ylabel(f"best {metric}")
    for ax in axes[len(space):]:
        ax.set_visible(False)
    robust_ylim(axes[0], scored[score])
    handles = stop_reason_handles(trial_stop_reasons(scored), scored["trial_id"], marker=True)
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=9,
                          markerfacecolor="none", markeredgecolor="black", label="best trial"))
    fig.legend(handles=handles, loc="outside lower center", fontsize="small",
               ncols=len(handles) if ncols > 2 else math.ceil(len(handles) / 2))
    return save(fig, path)
