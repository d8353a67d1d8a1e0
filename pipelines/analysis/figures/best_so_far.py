"""The best score found so far against the budget spent, one step line per run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from pipelines.analysis.figures.canvas import figure, note, save


def plot_best_so_far(curves: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """pipelines.analysis.best_so_far's output: the best score found against
    cumulative training epochs (left) and wall time (right), one step line per run."""
    fig, axes = figure(10, 4.2, 1, 2, sharey=True)
    fig.suptitle(f"Best {metric} found so far")
    column = f"best_{metric}"
    axes[0].set(xlabel="training epochs, all trials together (cumulative)",
                ylabel=f"best {metric} so far")
    axes[1].set(xlabel="wall time since the first epoch began (s)")
    if curves.empty:
        for ax in axes:
            note(ax, "no epochs yet")
        return save(fig, path)
    groups = curves.groupby("run", sort=False) if "run" in curves else [(None, curves)]
    for run, c in groups:
        improved = c[column].ne(c[column].shift()).to_numpy()  # dots where the best changed
        for ax, x in zip(axes, ("epochs", "wall_s")):
            (line,) = ax.step(c[x], c[column], where="post", linewidth=1.8, label=run)
            ax.plot(c[x][improved], c[column][improved], "o", markersize=3.5,
                    color=line.get_color())
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    if "run" in curves:
        axes[1].legend(title="run", fontsize="small", loc="best")
    return save(fig, path)
