"""The training-loss curves of the trials' step windows, coloured by each
trial's diagnosis (pipelines.records.diagnosis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from pipelines.analysis.figures.canvas import figure, note, save
from pipelines.analysis.figures.style import DIAGNOSIS_COLORS, run_title
from pipelines.records import diagnosis
from pipelines.records.tables import CONFIG_PREFIX

MAX_CURVES_PER_LABEL = 20  # curves drawn of each label, spread over the lr: bounded cost
TOP_RATIO = diagnosis.DIVERGED_RATIO  # the y axis ends at this many times the median start


def plot_loss_diagnosis(trials: pd.DataFrame, steps: pd.DataFrame, meta: dict,
                        path: str | Path) -> Path:
    """Each labelled trial's training loss per step window against epochs (an epoch's
    windows spread over it by step), coloured by its label; at most
    MAX_CURVES_PER_LABEL of each label (`shown_trials`); log y axis cut at TOP_RATIO
    times the median start, a cross where a diverged curve ends or leaves it."""
    fig, (ax,) = figure(8, 4.8)
    ax.set(title=f"Training loss per step window, by diagnosis, {run_title(meta)}",
           xlabel="epoch", ylabel="training loss (mean per example in the window)")
    shown = shown_trials(trials)
    ids = [t for group in shown.values() for t in group]
    curves = steps[steps["trial_id"].isin(ids)]
    finite = curves[np.isfinite(curves["train_loss"].astype(float))
                    & (curves["train_loss"].astype(float) > 0)]
    if finite.empty:
        note(ax, "no step windows recorded")
        return save(fig, path)
    curves = curves.assign(x=epoch_position(curves)).sort_values(["trial_id", "step"])
    starts = finite.sort_values("step").groupby("trial_id")["train_loss"].first()
    top = TOP_RATIO * float(starts.median()) * 1.05
    bottom = float(finite["train_loss"].min()) * 0.9
    by_trial = dict(tuple(curves.groupby("trial_id", sort=False)))
    totals = trial_labels(trials).value_counts()
    handles = []
    for label in diagnosis.LABELS:  # ok last: on top
        color = DIAGNOSIS_COLORS[label]
        for trial_id in shown.get(label, []):
            c = by_trial.get(trial_id)
            if c is None:
                continue
            y = c["train_loss"].astype(float).where(lambda v: np.isfinite(v) & (v > 0))
            ax.plot(c["x"], y, color=color, linewidth=1.1, alpha=0.75)
            if label == "diverged":
                _cross(ax, c["x"].to_numpy(float), y.to_numpy(float), top, color)
        if label in shown:
            n, drawn = int(totals.get(label, 0)), len(shown[label])
            count = f"{n}" if drawn == n else f"{drawn} of {n} shown"
            handles.append(Line2D([], [], color=color, linewidth=2,
                                  marker="x" if label == "diverged" else None,
                                  label=f"{label} ({count})"))
    ax.set_yscale("log")
    ax.set_ylim(bottom, max(top, bottom * 1.5))
    # plain numbers (2, 3, 0.5), the ticks between powers of ten labelled on a short axis
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    ax.set_xlim(0, max(float(curves["x"].max()), 1.0))
    ax.legend(handles=handles, fontsize="small", loc="best", title="diagnosis (trials)")
    return save(fig, path)


def trial_labels(trials: pd.DataFrame) -> pd.Series:
    """The labelled trials' labels, indexed by trial id."""
    if "diagnosis" not in trials:
        return pd.Series(dtype=str)
    judged = trials[trials["diagnosis"].notna()]
    return pd.Series(judged["diagnosis"].astype(str).to_numpy(),
                     index=judged["trial_id"].astype(str).to_numpy())


def shown_trials(trials: pd.DataFrame, limit: int = MAX_CURVES_PER_LABEL
                 ) -> dict[str, list[str]]:
    """{label: trial ids} of the curves to draw: each label's trials, or `limit` of
    them evenly spread over their lr (their id order without an lr column)."""
    labels = trial_labels(trials)
    lr_column = CONFIG_PREFIX + "lr"
    if lr_column in trials:
        lr = pd.Series(pd.to_numeric(trials[lr_column], errors="coerce").to_numpy(),
                       index=trials["trial_id"].astype(str).to_numpy())
    else:
        lr = pd.Series(np.nan, index=trials["trial_id"].astype(str).to_numpy())
    shown = {}
    for label in diagnosis.LABELS:
        ids = sorted(labels.index[labels == label],
                     key=lambda t: (float(lr.get(t, np.nan)) if np.isfinite(
                         lr.get(t, np.nan)) else np.inf, t))
        if not ids:
            continue
        if len(ids) > limit:
            picks = np.unique(np.linspace(0, len(ids) - 1, limit).round().astype(int))
            ids = [ids[i] for i in picks]
        shown[label] = ids
    return shown


def epoch_position(steps: pd.DataFrame) -> pd.Series:
    """Each window's end in epochs: its step over its trial's steps per epoch (the
    last step of the trial's first recorded epoch, over that epoch's number)."""
    first = steps.groupby("trial_id")["epoch"].transform("min")
    in_first = steps[steps["epoch"] == first]
    per_epoch = (in_first.groupby("trial_id")["step"].max()
                 / in_first.groupby("trial_id")["epoch"].first())
    spe = steps["trial_id"].map(per_epoch).astype(float)
    return steps["step"].astype(float) / spe.where(spe > 0, 1.0)


def _cross(ax: Axes, x: np.ndarray, y: np.ndarray, top: float, color: str) -> None:
    """A cross at the diverged curve's last finite window below `top`'s edge, or at
    the edge where it first left the plot."""
    shown = np.isfinite(y)
    if not shown.any():
        return
    above = np.flatnonzero(shown & (y > top))
    at = int(above[0]) if len(above) else int(np.flatnonzero(shown)[-1])
    ax.plot([x[at]], [min(float(y[at]), top)], color=color, marker="x", markersize=9,
            markeredgewidth=2, linestyle="none", clip_on=False)
