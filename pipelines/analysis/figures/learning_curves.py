"""The learning curves: the metric after each epoch, one line per trial."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipelines.analysis.figures.canvas import figure, note, robust_ylim, save
from pipelines.analysis.figures.style import (
    STOP_COLORS,
    metric_label,
    run_title,
    stop_reason_handles,
)
from pipelines.analysis.figures.trials import (
    RUNG_SCHEDULERS,
    best_trial_id,
    rung_epochs,
    trial_stop_reasons,
)
from pipelines.analysis.formatting import comma_list
from pipelines.analysis.ranking import RUNNING
from pipelines.analysis.runs import scored_epochs


def plot_learning_curves(trials: pd.DataFrame, epochs: pd.DataFrame, meta: dict,
                         path: str | Path) -> Path:
    """The metric after each epoch, one line per trial coloured by its stop reason;
    dotted lines at ASHA's / HyperBand's rungs; the best trial drawn in black."""
    metric = meta["metric"]
    fig, (ax,) = figure(8, 4.8)
    ax.set(title=f"Learning curves: {metric} per epoch, {run_title(meta)}",
           xlabel="epoch", ylabel=metric_label(metric))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    scored = scored_epochs(epochs, metric)
    if scored.empty:
        note(ax, "no epochs yet")
        return save(fig, path)
    reasons = trial_stop_reasons(trials)
    for trial_id, e in scored.sort_values(["trial_id", "epoch"]).groupby("trial_id"):
        reason = reasons.get(str(trial_id), RUNNING)
        ax.plot(e["epoch"], e[metric], color=STOP_COLORS[reason], marker="o", markersize=3,
                linewidth=1.2, alpha=0.8)
        if reason == "diverged":  # a cross where its last sound epoch ended
            ax.plot(e["epoch"].iloc[-1:], e[metric].iloc[-1:], color=STOP_COLORS[reason],
                    marker="x", markersize=9, markeredgewidth=2, linestyle="none")
    handles = stop_reason_handles(reasons, scored["trial_id"].unique())
    handles += _draw_best(ax, scored, metric, best_trial_id(trials, meta))
    handles += _draw_rungs(ax, meta)
    max_epochs = (meta.get("budget") or {}).get("max_epochs")
    ax.set_xlim(0.5, max(max_epochs or 1, scored["epoch"].max()) + 0.5)
    robust_ylim(ax, scored[metric])
    ax.legend(handles=handles, fontsize="small", loc="best", title="trial stopped because")
    return save(fig, path)


def _draw_best(ax: Axes, scored: pd.DataFrame, metric: str, best: str | None) -> list[Line2D]:
    """The best trial's curve in black, on top; its legend entry (none if not shown)."""
    if best is None or not (scored["trial_id"] == best).any():
        return []
    e = scored[scored["trial_id"] == best].sort_values("epoch")
    ax.plot(e["epoch"], e[metric], color="black", marker="o", markersize=4, linewidth=2.2,
            zorder=3)
    return [Line2D([], [], color="black", linewidth=2.2, marker="o", label=f"best trial {best}")]


def _draw_rungs(ax: Axes, meta: dict) -> list[Line2D]:
    """Dotted lines at the scheduler's rungs; their legend entry (none without rungs)."""
    rungs = rung_epochs(meta)
    for r in rungs:
        ax.axvline(r, color="0.35", linestyle=":", linewidth=1.2)
    if not rungs:
        return []
    return [Line2D([], [], color="0.35", linestyle=":",
                   label=f"{RUNG_SCHEDULERS[meta['scheduler']]} rung (epoch {comma_list(rungs)})")]
