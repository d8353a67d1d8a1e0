"""Hyperparameter importance: each parameter's share, one panel per evaluator."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.analysis.figures.canvas import figure, note, save
from pipelines.analysis.figures.style import EVALUATOR_NAMES, MAX_LABEL
from pipelines.analysis.formatting import truncate

MIN_ROWS = 4  # the figure is at least this many bars tall, so few bars are not huge


def plot_importances(importances: Mapping[str, pd.Series | None], metric: str,
                     path: str | Path) -> Path:
    """Horizontal bars of each hyperparameter's importance share, one panel per
    evaluator, parameters in one order (the first evaluator's, largest on top)."""
    panels = {k: v for k, v in importances.items() if v is not None}
    fig, axes = figure(3.6 * max(len(panels), 1) + 1.4, 1.2 + 0.35 * _n_rows(panels),
                       1, max(len(panels), 1), sharey=True)
    attrs = next((v.attrs for v in panels.values() if len(v) and "epoch" in v.attrs), None)
    basis = (f"best {metric} up to epoch {attrs['epoch']} ({attrs['trials']} trials)"
             if attrs else f"best {metric}")
    fig.suptitle(f"Hyperparameter importance for {basis}")
    if not any(len(v) for v in panels.values()):
        note(axes[0], "too few scored trials to estimate importance")
        return save(fig, path)
    order = _importance_order(panels)
    positions = np.arange(len(order))[::-1]  # largest on top
    for ax, (evaluator, shares) in zip(axes, panels.items()):
        values = shares.reindex(order).fillna(0.0).astype(float)
        ax.barh(positions, values, color="#0072B2", height=0.7)
        for y, v in zip(positions, values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize="small")
        ax.set(title=EVALUATOR_NAMES.get(evaluator, evaluator), xlim=(0, 1.15 * max(
            values.max(), 0.01)), xlabel="importance (share of total, sums to 1)")
        ax.set_yticks(positions, [truncate(p, MAX_LABEL) for p in order])
    return save(fig, path)


def _importance_order(panels: dict[str, pd.Series]) -> list[str]:
    """The first non-empty panel's parameters, largest first, then the others' by name."""
    first = next(v for v in panels.values() if len(v))
    order = [str(p) for p in first.sort_values(ascending=False).index]
    rest = sorted({str(p) for v in panels.values() for p in v.index} - set(order))
    return order + rest


def _n_rows(panels: dict[str, pd.Series]) -> int:
    return max(len({p for v in panels.values() for p in v.index}), MIN_ROWS)
