"""Parallel coordinates: one line per scored trial through its value of each
searched hyperparameter to its best score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from pipelines.analysis.figures.canvas import figure, note, save
from pipelines.analysis.figures.param_axes import span_scale, unit_scale
from pipelines.analysis.figures.style import MAX_LABEL, run_title
from pipelines.analysis.figures.trials import column, scored_trials
from pipelines.analysis.formatting import LABEL_DIGITS, significant, truncate
from pipelines.records.tables import CONFIG_PREFIX

CHOICE_LABEL = 10  # characters of a Choice's option beside its axis before it is cut


def plot_parallel_coordinates(trials: pd.DataFrame, meta: dict, path: str | Path) -> Path:
    """One vertical axis per searched hyperparameter and one for the best score, each
    scaled to [0, 1]; one line per scored trial, coloured by its best score."""
    metric, mode, space = meta["metric"], meta.get("mode", "max"), meta.get("space", {})
    score = f"best_{metric}"
    names = [*space, score]
    fig, (ax,) = figure(min(11.0, max(6.0, 0.95 * len(names) + 2)), 5.2)
    ax.set_title(f"Parallel coordinates of the scored trials, {run_title(meta)}")
    scored = scored_trials(trials, metric)
    if scored.empty:
        note(ax, "no scored trials yet")
        return save(fig, path)
    columns = [unit_scale(column(scored, CONFIG_PREFIX + n), spec) for n, spec in space.items()]
    low, high = float(scored[score].min()), float(scored[score].max())
    columns.append(span_scale(scored[score].astype(float), low, high))
    table = np.column_stack(columns)
    cmap = colormaps["viridis" if mode == "max" else "viridis_r"]
    pad = 0 if high > low else 0.01 * max(abs(low), 1)  # one score: a narrow bar around it
    norm = Normalize(low - pad, high + pad)
    order = np.argsort(scored[score].to_numpy() * (1 if mode == "max" else -1))
    for rank, row in enumerate(order):  # the best drawn last, on top, and thicker
        ax.plot(range(len(names)), table[row], color=cmap(norm(scored[score].iloc[row])),
                linewidth=2.6 if rank == len(order) - 1 else 1.2, alpha=0.85)
    for i, (name, spec) in enumerate(space.items()):
        _axis_labels(ax, i, _value_ticks(spec, column(scored, CONFIG_PREFIX + name)))
    _axis_labels(ax, len(space), _bound_ticks(low, high))
    _style_axes(ax, names)
    better = "higher" if mode == "max" else "lower"
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"best {metric} ({better} is better)")
    return save(fig, path)


def _style_axes(ax: Axes, names: list[str]) -> None:
    """A vertical line per axis, named below, and no frame or y ticks."""
    for i in range(len(names)):
        ax.axvline(i, color="0.3", linewidth=0.8)
    labels = [truncate(n, MAX_LABEL) for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=30 if len(names) > 5 else 0,
                  ha="right" if len(names) > 5 else "center")
    ax.set(xlim=(-0.2, len(names) - 0.55), ylim=(-0.05, 1.05), yticks=[])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _value_ticks(spec: dict, values: pd.Series) -> list[tuple[float, str]]:
    """(position in [0, 1], label) pairs for a parameter's axis: a Choice's options,
    or the domain's bounds (the values' range where the domain has none)."""
    if spec.get("type") == "Choice":
        n = len(spec["options"])
        return [(i / (n - 1) if n > 1 else 0.5, truncate(str(o), CHOICE_LABEL))
                for i, o in enumerate(spec["options"])]
    low, high = spec.get("low"), spec.get("high")
    if low is None or high is None:
        v = values.astype(float)
        low, high = float(v.min()), float(v.max())
    return _bound_ticks(low, high)


def _bound_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """The axis's two ends labelled with their values; one label if they are equal."""
    if high == low:
        return [(0.5, significant(low, LABEL_DIGITS))]
    return [(0.0, significant(low, LABEL_DIGITS)), (1.0, significant(high, LABEL_DIGITS))]


def _axis_labels(ax: Axes, x: float, ticks: list[tuple[float, str]]) -> None:
    """The tick labels of the axis at `x`, just right of it, on a faint white box."""
    for y, text in ticks:
        ax.text(x + 0.04, y, text, fontsize="small", ha="left", va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
