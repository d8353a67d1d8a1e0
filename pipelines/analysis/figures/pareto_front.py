"""A run's trials on every pair of its objectives, a scatter plot each, with the
Pareto front ringed and joined by its step line, and the constraints' limits."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from pipelines.analysis.figures.canvas import figure, note, save
from pipelines.analysis.figures.style import (
    SCATTER_MARKERS,
    STOP_COLORS,
    objective_label,
    run_title,
    stop_reason_handles,
)
from pipelines.analysis.figures.trials import column, trial_stop_reasons
from pipelines.analysis.objectives import (
    Objective,
    constraints_of,
    objective_columns,
    objectives_of,
)
from pipelines.analysis.pareto import front_of, non_dominated
from pipelines.analysis.ranking import stop_reasons
from pipelines.records import tables as res

PANELS_PER_ROW = 3  # at most; rows are filled evenly
LOG_SPAN = 100.0  # positive values whose max / min reaches this (two decades): a log axis
EDGE = 0.02  # a trial lacking a panel's value sits this far (axes fraction) inside its edge


def plot_pareto_front(trials: pd.DataFrame, meta: dict, path: str | Path) -> Path:
    """A scatter plot for each pair of the run's objectives: every trial a point coloured
    by its stop reason (infeasible ones a cross; one lacking a panel's value on that
    axis's edge, at its worse end), the Pareto front ringed and joined by a step line,
    each constraint's limit dashed."""
    objectives = objectives_of(meta)
    pairs = list(itertools.combinations(objectives, 2))
    title = f"Trials on each pair of objectives, the Pareto front ringed\n{run_title(meta)}"
    values = np.column_stack([column(trials, c).to_numpy(dtype=float, na_value=np.nan)
                              for c in objective_columns(objectives)])
    placed = np.isfinite(values).any(axis=1)
    if len(pairs) == 0 or not placed.any():
        fig, (ax,) = figure(7, 3.5)
        fig.suptitle(title)
        note(ax, "one objective: no trade-off to show" if not pairs else "no trial measured yet")
        return save(fig, path)
    nrows = math.ceil(len(pairs) / PANELS_PER_ROW)
    ncols = math.ceil(len(pairs) / nrows)
    fig, axes = figure(max(4.6 * ncols, 6.5), 3.9 * nrows + 1.3, nrows, ncols)
    fig.suptitle(title)
    front = front_of(trials, objectives)
    on_front = trials["trial_id"].isin(set(front["trial_id"])).to_numpy()
    limits = constraints_of(meta)
    drew_limit = False
    for ax, pair in zip(axes, pairs):
        drew_limit |= _draw_panel(ax, trials, on_front, pair, limits)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    handles = stop_reason_handles(trial_stop_reasons(trials), trials["trial_id"][placed],
                                  marker=True)
    handles.append(Line2D([], [], color="black", linewidth=1.2, marker="o", markersize=9,
                          markerfacecolor="none", markeredgecolor="black",
                          label=f"Pareto front ({len(front)})"))
    if drew_limit:
        handles.append(Line2D([], [], color="0.3", linestyle="--", label="constraint limit"))
    fig.legend(handles=handles, loc="outside lower center", fontsize="small",
               ncols=min(len(handles), 4))
    return save(fig, path)


def _draw_panel(ax: Axes, trials: pd.DataFrame, on_front: np.ndarray,
                pair: tuple[Objective, Objective], limits: dict[str, float]) -> bool:
    """One pair of objectives: the trials, the front, the limits; whether a limit was drawn."""
    (x_metric, x_mode), (y_metric, y_mode) = pair
    x_column, y_column = res.objective_column(x_metric), res.objective_column(y_metric)
    x = column(trials, x_column).to_numpy(dtype=float, na_value=np.nan)
    y = column(trials, y_column).to_numpy(dtype=float, na_value=np.nan)
    _set_scale(ax, "x", x)
    _set_scale(ax, "y", y)
    has_x, has_y = np.isfinite(x), np.isfinite(y)
    # a missing value goes to the axis's worse end: left / bottom when higher is better
    x_edge = EDGE if x_mode == "max" else 1 - EDGE
    y_edge = EDGE if y_mode == "max" else 1 - EDGE
    reasons = stop_reasons(trials).to_numpy()
    for reason in dict.fromkeys(reasons):
        style: dict[str, Any] = {
            "color": STOP_COLORS[str(reason)], "marker": SCATTER_MARKERS.get(str(reason), "o"),
            "markersize": 5, "linestyle": "none", "alpha": 0.85}
        of = reasons == reason
        both, only_x, only_y = of & has_x & has_y, of & has_x & ~has_y, of & ~has_x & has_y
        ax.plot(x[both], y[both], **style)
        ax.plot(x[only_x], np.full(only_x.sum(), y_edge), transform=ax.get_xaxis_transform(),
                **style)
        ax.plot(np.full(only_y.sum(), x_edge), y[only_y], transform=ax.get_yaxis_transform(),
                **style)
    _draw_front(ax, x[on_front], y[on_front], x_mode, y_mode)
    drawn = False
    for name, line in ((x_column, ax.axvline), (y_column, ax.axhline)):
        if name in limits:
            line(limits[name], color="0.3", linestyle="--", linewidth=1.1)
            drawn = True
    ax.set(xlabel=objective_label(x_metric, x_mode), ylabel=objective_label(y_metric, y_mode))
    ax.grid(alpha=0.3)
    return drawn


def _draw_front(ax: Axes, x: np.ndarray, y: np.ndarray, x_mode: str, y_mode: str) -> None:
    """The front's trials ringed, and the step line through those of them that no other
    beats on this pair (with two objectives, all of them), bounding what they dominate."""
    ax.plot(x, y, linestyle="none", marker="o", markersize=10, markerfacecolor="none",
            markeredgecolor="black", markeredgewidth=1.4, zorder=3)
    sign = {"min": 1.0, "max": -1.0}
    on_pair = non_dominated(np.column_stack([sign[x_mode] * x, sign[y_mode] * y]))
    order = np.argsort(x[on_pair], kind="stable")
    # the line turns at each corner it shares with the next trial's worse x: to the right
    # first when lower x is better (post), up or down first when higher is
    ax.step(x[on_pair][order], y[on_pair][order], where="post" if x_mode == "min" else "pre",
            color="black", linewidth=1.2, zorder=2)


def _set_scale(ax: Axes, axis: str, values: np.ndarray) -> None:
    """A log axis for positive values spanning two decades or more (parameter counts)."""
    v = values[np.isfinite(values)]
    if len(v) and v.min() > 0 and v.max() / v.min() >= LOG_SPAN:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
