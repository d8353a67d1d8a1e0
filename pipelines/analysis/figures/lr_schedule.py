"""The best trial's learning rate per epoch, the other trials faint behind it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipelines.analysis.figures.canvas import figure, note, save
from pipelines.analysis.figures.style import run_title
from pipelines.analysis.figures.trials import best_trial_id
from pipelines.analysis.formatting import comma_list
from pipelines.records.tables import CONFIG_PREFIX


def plot_lr_schedule(trials: pd.DataFrame, epochs: pd.DataFrame, meta: dict,
                     path: str | Path) -> Path:
    """The best trial's optimizer learning rate per epoch (its value in the epoch's
    last step), with every other trial's faint behind it; log y axis."""
    fig, (ax,) = figure(7, 4.2)
    ax.set(title=f"Learning-rate schedule of the best trial, {run_title(meta)}",
           xlabel="epoch", ylabel="learning rate (optimizer)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lrs = epochs[epochs["lr"].astype(float) > 0] if "lr" in epochs else epochs.iloc[:0]
    if lrs.empty:
        note(ax, "no learning rate reported" if len(epochs) else "no epochs yet")
        return save(fig, path)
    best = best_trial_id(trials, meta)
    handles = []
    for trial_id, e in lrs.sort_values(["trial_id", "epoch"]).groupby("trial_id"):
        if trial_id != best:
            ax.plot(e["epoch"], e["lr"], color="0.6", linewidth=0.9, alpha=0.5, marker="o",
                    markersize=2.5)
    if lrs["trial_id"].nunique() > (best in set(lrs["trial_id"])):
        handles.append(Line2D([], [], color="0.6", alpha=0.5, label="other trials"))
    if best is not None and (lrs["trial_id"] == best).any():
        e = lrs[lrs["trial_id"] == best].sort_values("epoch")
        ax.plot(e["epoch"], e["lr"], color="black", marker="o", markersize=4, linewidth=2)
        handles.insert(0, Line2D([], [], color="black", marker="o", linewidth=2,
                                 label=f"best trial {best} ({_trial_summary(trials, best)})"))
    ax.set_yscale("log")
    ax.legend(handles=handles, fontsize="small", loc="best")
    return save(fig, path)


def _trial_summary(trials: pd.DataFrame, trial_id: str) -> str:
    """'adamw, cosine, batch 256': the trial's optimizer, schedule and batch size."""
    row = trials[trials["trial_id"] == trial_id].iloc[0]
    parts = [str(row[CONFIG_PREFIX + k]) for k in ("optimizer", "schedule")
             if CONFIG_PREFIX + k in row and not pd.isna(row[CONFIG_PREFIX + k])]
    if CONFIG_PREFIX + "batch_size" in row:
        parts.append(f"batch {row[CONFIG_PREFIX + 'batch_size']}")
    return comma_list(parts) or "best score"
