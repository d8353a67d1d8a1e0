"""Figures of a sweep's results, one function per figure, drawn from the Parquet
tables (see pipelines.records.tables) and run.json's metadata, never from paths.

Each function saves one PNG atomically (temp file and rename, through
pipelines.records.storage) and returns its path. Figures are built on
`matplotlib.figure.Figure` with an Agg canvas, never through pyplot, so importing
or calling this module changes no global matplotlib state.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipelines.analysis.leaderboard import leaderboard
from pipelines.records.storage import resolve
from pipelines.records.tables import CONFIG_PREFIX, STOP_REASONS

__all__ = [
    "EVALUATOR_NAMES", "RUNNING", "STOP_COLORS", "best_trial_id", "plot_best_so_far",
    "plot_importances", "plot_learning_curves", "plot_lr_schedule", "plot_metric_vs_params",
    "plot_parallel_coordinates", "RUNG_SCHEDULERS", "rung_epochs",
]

DPI = 100
RUNNING = "running"  # a trial whose stop_reason is still None
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies
STOP_COLORS = {"completed": "#0072B2", "early_stopped": "#E69F00", "diverged": "#D55E00",
               "error": "#CC79A7", RUNNING: "#009E73"}
EVALUATOR_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}
METRIC_LABELS = {"val_acc": "validation accuracy (fraction)",
                 "val_loss": "validation loss (cross-entropy)"}
# units of config keys, as pipelines/training/config.py's comments give them
CONFIG_UNITS = {"lr": "per 256 examples", "batch_size": "examples", "warmup_epochs": "epochs",
                "epochs": "epochs", "width": "channels", "crop_padding": "pixels",
                "flip_prob": "probability"}
RUNG_SCHEDULERS = {"asha": "ASHA", "hyperband": "HyperBand"}  # name -> as written
MAX_LABEL = 14  # characters of a tick label before it is cut


# ---- public figures -------------------------------------------------------------------


def plot_learning_curves(trials: pd.DataFrame, epochs: pd.DataFrame, meta: dict,
                         path: str | Path) -> Path:
    """The metric after each epoch, one line per trial coloured by its stop reason;
    dotted lines at ASHA's / HyperBand's rungs; the best trial drawn in black."""
    metric = meta["metric"]
    fig, (ax,) = _figure(8, 4.8)
    ax.set(title=f"Learning curves: {metric} per epoch, {_run_title(meta)}",
           xlabel="epoch", ylabel=_metric_label(metric))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    scored = _scored_epochs(epochs, metric)
    if scored.empty:
        _note(ax, "no epochs yet")
        return _save(fig, path)
    reasons = _reasons(trials)
    for trial_id, e in scored.sort_values(["trial_id", "epoch"]).groupby("trial_id"):
        reason = reasons.get(trial_id, RUNNING)
        ax.plot(e["epoch"], e[metric], color=STOP_COLORS[reason], marker="o", markersize=3,
                linewidth=1.2, alpha=0.8)
        if reason == "diverged":  # a cross where its last sound epoch ended
            ax.plot(e["epoch"].iloc[-1:], e[metric].iloc[-1:], color=STOP_COLORS[reason],
                    marker="x", markersize=9, markeredgewidth=2, linestyle="none")
    handles = _reason_handles(reasons, scored["trial_id"].unique())
    best = best_trial_id(trials, meta)
    if best is not None and (scored["trial_id"] == best).any():
        e = scored[scored["trial_id"] == best].sort_values("epoch")
        ax.plot(e["epoch"], e[metric], color="black", marker="o", markersize=4, linewidth=2.2,
                zorder=3)
        handles.append(Line2D([], [], color="black", linewidth=2.2, marker="o",
                              label=f"best trial {best}"))
    rungs = rung_epochs(meta)
    for r in rungs:
        ax.axvline(r, color="0.35", linestyle=":", linewidth=1.2)
    if rungs:
        handles.append(Line2D([], [], color="0.35", linestyle=":",
                              label=f"{RUNG_SCHEDULERS[meta['scheduler']]} rung "
                                    f"(epoch {_join(rungs)})"))
    max_epochs = (meta.get("budget") or {}).get("max_epochs")
    ax.set_xlim(0.5, max(max_epochs or 1, scored["epoch"].max()) + 0.5)
    _robust_ylim(ax, scored[metric])
    ax.legend(handles=handles, fontsize="small", loc="best", title="trial stopped because")
    return _save(fig, path)


def plot_metric_vs_params(trials: pd.DataFrame, meta: dict, path: str | Path) -> Path:
    """A grid of scatter plots: each trial's best score against each searched
    hyperparameter (log axis for log domains, jittered categories for Choice)."""
    metric, space = meta["metric"], meta.get("space", {})
    score = f"best_{metric}"
    title = f"Best {metric} against each searched hyperparameter\n{_run_title(meta)}"
    scored = trials.dropna(subset=[score]) if score in trials else trials.iloc[:0]
    if not space or scored.empty:
        fig, (ax,) = _figure(7, 3.5)
        fig.suptitle(title)
        _note(ax, "no searched hyperparameters" if not space else "no scored trials yet")
        return _save(fig, path)
    nrows = math.ceil(len(space) / 4)  # at most 4 a row, rows filled evenly
    ncols = math.ceil(len(space) / nrows)
    fig, axes = _figure(max(3.2 * ncols, 6.5), 2.7 * nrows + 1.2, nrows, ncols, sharey=True)
    fig.suptitle(title)
    colors = [STOP_COLORS[_reason(r)] for r in scored["stop_reason"]]
    best = scored["trial_id"] == best_trial_id(trials, meta)
    for i, (ax, (name, spec)) in enumerate(zip(axes, space.items())):
        x = _param_x(_column(scored, CONFIG_PREFIX + name), spec, jitter=True)
        ax.scatter(x, scored[score], c=colors, s=22, alpha=0.85, edgecolors="none")
        ax.scatter(x[best.to_numpy()], scored[score][best], s=110, facecolors="none",
                   edgecolors="black", linewidths=1.4)
        _param_xaxis(ax, name, spec)
        if i % ncols == 0:
            ax.set_ylabel(f"best {metric}")
    for ax in axes[len(space):]:
        ax.set_visible(False)
    _robust_ylim(axes[0], scored[score])
    handles = _reason_handles(_reasons(scored), scored["trial_id"], marker=True)
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=9,
                          markerfacecolor="none", markeredgecolor="black", label="best trial"))
    fig.legend(handles=handles, loc="outside lower center", fontsize="small",
               ncols=len(handles) if ncols > 2 else math.ceil(len(handles) / 2))
    return _save(fig, path)


def plot_parallel_coordinates(trials: pd.DataFrame, meta: dict, path: str | Path) -> Path:
    """One vertical axis per searched hyperparameter and one for the best score, each
    scaled to [0, 1]; one line per scored trial, coloured by its best score."""
    metric, mode, space = meta["metric"], meta.get("mode", "max"), meta.get("space", {})
    score = f"best_{metric}"
    names = [*space, score]
    fig, (ax,) = _figure(min(11.0, max(6.0, 0.95 * len(names) + 2)), 5.2)
    ax.set_title(f"Parallel coordinates of the scored trials, {_run_title(meta)}")
    scored = trials.dropna(subset=[score]) if score in trials else trials.iloc[:0]
    if scored.empty:
        _note(ax, "no scored trials yet")
        return _save(fig, path)
    columns = [_unit_scale(_column(scored, CONFIG_PREFIX + n), spec) for n, spec in space.items()]
    low, high = float(scored[score].min()), float(scored[score].max())
    columns.append(_span_scale(scored[score].astype(float), low, high))
    table = np.column_stack(columns)
    cmap = colormaps["viridis" if mode == "max" else "viridis_r"]
    pad = 0 if high > low else 0.01 * max(abs(low), 1)  # one score: a narrow bar around it
    norm = Normalize(low - pad, high + pad)
    order = np.argsort(scored[score].to_numpy() * (1 if mode == "max" else -1))
    for rank, row in enumerate(order):  # the best drawn last, on top, and thicker
        ax.plot(range(len(names)), table[row], color=cmap(norm(scored[score].iloc[row])),
                linewidth=2.6 if rank == len(order) - 1 else 1.2, alpha=0.85)
    for i, (name, spec) in enumerate(space.items()):
        _axis_labels(ax, i, _value_ticks(spec, _column(scored, CONFIG_PREFIX + name)))
    _axis_labels(ax, len(space), _value_ticks({"low": low, "high": high}, None))
    for i in range(len(names)):
        ax.axvline(i, color="0.3", linewidth=0.8)
    labels = [_short(n) for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=30 if len(names) > 5 else 0,
                  ha="right" if len(names) > 5 else "center")
    ax.set(xlim=(-0.2, len(names) - 0.55), ylim=(-0.05, 1.05), yticks=[])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"best {metric}")
    return _save(fig, path)


def plot_importances(importances: dict[str, pd.Series], metric: str, path: str | Path) -> Path:
    """Horizontal bars of each hyperparameter's importance share, one panel per
    evaluator, parameters in one order (the first evaluator's, largest on top)."""
    panels = {k: v for k, v in importances.items() if v is not None}
    fig, axes = _figure(3.6 * max(len(panels), 1) + 1.4, 1.2 + 0.35 * _n_params(panels),
                        1, max(len(panels), 1), sharey=True)
    attrs = next((v.attrs for v in panels.values() if len(v) and "epoch" in v.attrs), None)
    basis = (f"best {metric} up to epoch {attrs['epoch']} ({attrs['trials']} trials)"
             if attrs else f"best {metric}")
    fig.suptitle(f"Hyperparameter importance for {basis}")
    if not any(len(v) for v in panels.values()):
        _note(axes[0], "too few scored trials to estimate importance")
        return _save(fig, path)
    order = _importance_order(panels)
    positions = np.arange(len(order))[::-1]  # largest on top
    for ax, (evaluator, shares) in zip(axes, panels.items()):
        values = shares.reindex(order).fillna(0.0).astype(float)
        ax.barh(positions, values, color="#0072B2", height=0.7)
        for y, v in zip(positions, values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize="small")
        ax.set(title=EVALUATOR_NAMES.get(evaluator, evaluator), xlim=(0, 1.15 * max(
            values.max(), 0.01)), xlabel="importance (share of total, sums to 1)")
        ax.set_yticks(positions, [_short(p) for p in order])
    return _save(fig, path)


def plot_lr_schedule(trials: pd.DataFrame, epochs: pd.DataFrame, meta: dict,
                     path: str | Path) -> Path:
    """The best trial's optimizer learning rate per epoch (its value in the epoch's
    last step), with every other trial's faint behind it; log y axis."""
    fig, (ax,) = _figure(7, 4.2)
    ax.set(title=f"Learning-rate schedule of the best trial, {_run_title(meta)}",
           xlabel="epoch", ylabel="learning rate (optimizer)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lrs = epochs[epochs["lr"].astype(float) > 0] if "lr" in epochs else epochs.iloc[:0]
    if lrs.empty:
        _note(ax, "no epochs yet")
        return _save(fig, path)
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
    return _save(fig, path)


def plot_best_so_far(curves: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """pipelines.analysis.best_so_far's output: the best score found against
    cumulative training epochs (left) and wall time (right), one step line per run."""
    fig, axes = _figure(10, 4.2, 1, 2, sharey=True)
    fig.suptitle(f"Best {metric} found so far")
    column = f"best_{metric}"
    axes[0].set(xlabel="training epochs, all trials together (cumulative)",
                ylabel=f"best {metric} so far")
    axes[1].set(xlabel="wall time since the first epoch began (s)")
    if curves.empty:
        for ax in axes:
            _note(ax, "no epochs yet")
        return _save(fig, path)
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
        axes[1].legend(title="run", fontsize="small", loc="lower right")
    return _save(fig, path)


def plot_lr_range(curve: pd.DataFrame, steepest: float | None, valley: float | None,
                  title: str, path: str | Path, note: str | None = None) -> Path:
    """The LR range test: loss against learning rate (log axis), raw and smoothed,
    with the suggestions marked, or a note that there is none."""
    fig, (ax,) = _figure(8, 4.6)
    ax.set_title(f"Learning-rate range test, {title}")
    if curve.empty:
        _note(ax, "no steps recorded")
        return _save(fig, path)
    ax.plot(curve["lr"], curve["loss"], color="0.75", lw=0.8, label="loss per step")
    ax.plot(curve["lr"], curve["smoothed_loss"], color="C0", lw=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (per 256 examples)", ylabel="training loss (cross-entropy)")
    _robust_ylim(ax, curve["smoothed_loss"])
    for lr, name, color in ((steepest, "steepest descent", "C3"), (valley, "valley", "C2")):
        if lr is not None:
            ax.axvline(lr, color=color, ls="--", lw=1.2, label=f"{name}: {lr:.3g}")
    if steepest is None and valley is None:
        ax.text(0.02, 0.04, f"no suggestion: {note or 'the loss did not fall'}",
                transform=ax.transAxes, fontsize="small", wrap=True)
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


# ---- helpers other modules use ------------------------------------------------------


def rung_epochs(meta: dict) -> list[int]:
    """The epochs at which ASHA compares trials (grace, grace*rf, grace*rf^2, ...
    below max_epochs); for HyperBand, those of its most aggressive bracket (Ray's
    HyperBand ignores the grace period); none for other schedulers."""
    budget = meta.get("budget") or {}
    grace, rf = budget.get("grace_period"), budget.get("reduction_factor")
    max_epochs = budget.get("max_epochs")
    if meta.get("scheduler") not in RUNG_SCHEDULERS or not (rf and rf > 1 and max_epochs):
        return []
    if meta["scheduler"] == "hyperband":  # as ray.tune.schedulers.HyperBandScheduler
        s_max = int(np.round(np.log(max_epochs) / np.log(rf)))
        grace = next((r for r in (int(max_epochs * rf ** -s) for s in range(s_max, -1, -1))
                      if r > 0), None)
    rungs, r = [], grace
    while r and r < max_epochs:
        rungs.append(int(r))
        r *= rf
    return rungs


def best_trial_id(trials: pd.DataFrame, meta: dict) -> str | None:
    """The id of the trial with the best score, None when no trial has one."""
    score = f"best_{meta['metric']}"
    if score not in trials or trials[score].isna().all():
        return None
    return str(leaderboard(trials, meta["metric"], meta["mode"], n=1)["trial_id"].iloc[0])


# ---- drawing helpers ----------------------------------------------------------------


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw).ravel()


def _save(fig: Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    resolve(str(path)).write_bytes(buffer.getvalue())  # temp file + rename
    return Path(path)


def _note(ax, text: str) -> None:
    """An empty panel's message, in place of meaningless 0..1 ticks."""
    ax.set(xticks=[], yticks=[])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize="large", color="0.4")


def _reason(value) -> str:
    return RUNNING if pd.isna(value) else str(value)


def _reasons(trials: pd.DataFrame) -> dict[str, str]:
    if trials.empty:
        return {}
    return {str(t): _reason(r) for t, r in zip(trials["trial_id"], trials["stop_reason"])}


def _reason_handles(reasons: dict[str, str], shown, marker: bool = False) -> list[Line2D]:
    """Legend entries for the stop reasons of the trials shown, with their counts."""
    counts = pd.Series([reasons.get(str(t), RUNNING) for t in shown]).value_counts()
    style = {"linestyle": "none", "marker": "o"} if marker else {"linewidth": 2}
    return [Line2D([], [], color=STOP_COLORS[r], label=f"{r.replace('_', ' ')} ({counts[r]})",
                   **{**style, **({"marker": "x"} if r == "diverged" and not marker else {})})
            for r in (*STOP_REASONS, RUNNING) if r in counts]


def _scored_epochs(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Epochs with a finite score, leaving out the epoch whose training loss
    diverged (its evaluation ran on NaN weights), as pipelines.records.tables does."""
    if metric not in epochs:
        return epochs.iloc[:0]
    ok = np.isfinite(epochs[metric].astype(float))
    if "train_loss" in epochs:
        ok &= np.isfinite(epochs["train_loss"].astype(float))
    return epochs[ok]


def _robust_ylim(ax, values: pd.Series) -> None:
    """Keep a few huge values (a diverging trial's loss) from flattening the rest."""
    v = values.astype(float)
    v = v[np.isfinite(v)]
    if len(v) < 4:
        return
    q10, q90 = v.quantile(0.1), v.quantile(0.9)
    spread = max(q90 - q10, 1e-12)
    low, high = max(v.min(), q10 - 3 * spread), min(v.max(), q90 + 3 * spread)
    if (v < low).any() or (v > high).any():
        pad = 0.05 * (high - low or 1)
        ax.set_ylim(low - pad, high + pad)
        ax.text(0.99, 0.01, f"{int(((v < low) | (v > high)).sum())} point(s) off scale",
                transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN for every row when the frame lacks it."""
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


def _param_x(values: pd.Series, spec: dict, jitter: bool = False) -> np.ndarray:
    """x positions of a parameter's values: the value, or a Choice's option index."""
    if spec.get("type") != "Choice":
        return values.astype(float).to_numpy()
    index = {str(o): i for i, o in enumerate(spec["options"])}
    x = np.array([index.get(str(v), np.nan) for v in values], dtype=float)
    if jitter:  # seeded: the same run draws the same figure
        x = x + np.random.default_rng(0).uniform(-0.15, 0.15, len(x))
    return x


def _param_xaxis(ax, name: str, spec: dict) -> None:
    unit = CONFIG_UNITS.get(name)
    ax.set_xlabel(f"{name} ({unit})" if unit else name)
    if spec.get("type") == "Choice":
        labels = [_short(str(o)) for o in spec["options"]]
        rotate = sum(len(s) for s in labels) > 20
        ax.set_xticks(range(len(labels)), labels, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        return
    low, high = spec.get("low"), spec.get("high")
    if _is_log(spec):
        ax.set_xscale("log")
        if low and high:
            ax.set_xlim(low / 1.3, high * 1.3)
    elif low is not None and high is not None:
        pad = 0.05 * (high - low or 1)
        ax.set_xlim(low - pad, high + pad)
    if spec.get("type") == "IntUniform" and not _is_log(spec):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _is_log(spec: dict) -> bool:
    return spec.get("type") == "LogUniform" or bool(spec.get("log"))


def _unit_scale(values: pd.Series, spec: dict) -> np.ndarray:
    """A parameter's values mapped to [0, 1]: by the domain's bounds (in log for
    log domains), or a Choice's option index."""
    if spec.get("type") == "Choice":
        n = len(spec["options"])
        return _param_x(values, spec) / (n - 1) if n > 1 else np.full(len(values), 0.5)
    v = values.astype(float).to_numpy()
    low, high = spec.get("low", np.nanmin(v)), spec.get("high", np.nanmax(v))
    if _is_log(spec):
        v, low, high = np.log10(v), math.log10(low), math.log10(high)
    return _span_scale(pd.Series(v), low, high)


def _span_scale(values: pd.Series, low: float, high: float) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return (v - low) / (high - low) if high > low else np.full(len(v), 0.5)


def _value_ticks(spec: dict, values) -> list[tuple[float, str]]:
    """(position in [0, 1], label) pairs for one parallel-coordinates axis."""
    if spec.get("type") == "Choice":
        n = len(spec["options"])
        return [(i / (n - 1) if n > 1 else 0.5, _short(str(o), 10))
                for i, o in enumerate(spec["options"])]
    low, high = spec.get("low"), spec.get("high")
    if low is None or high is None:
        v = values.astype(float)
        low, high = v.min(), v.max()
    if high == low:
        return [(0.5, _fmt(low))]
    return [(0.0, _fmt(low)), (1.0, _fmt(high))]


def _axis_labels(ax, x: float, ticks: list[tuple[float, str]]) -> None:
    for y, text in ticks:
        ax.text(x + 0.04, y, text, fontsize="small", ha="left", va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})


def _importance_order(panels: dict[str, pd.Series]) -> list[str]:
    first = next(v for v in panels.values() if len(v))
    order = list(first.sort_values(ascending=False).index)
    rest = sorted({p for v in panels.values() for p in v.index} - set(order))
    return order + rest


def _n_params(panels: dict[str, pd.Series]) -> int:
    return max(len({p for v in panels.values() for p in v.index}), 4)


def _trial_summary(trials: pd.DataFrame, trial_id: str) -> str:
    row = trials[trials["trial_id"] == trial_id].iloc[0]
    parts = [str(row[CONFIG_PREFIX + k]) for k in ("optimizer", "schedule")
             if CONFIG_PREFIX + k in row and not pd.isna(row[CONFIG_PREFIX + k])]
    if CONFIG_PREFIX + "batch_size" in row:
        parts.append(f"batch {row[CONFIG_PREFIX + 'batch_size']}")
    return ", ".join(parts) or "best score"


def _run_title(meta: dict) -> str:
    parts = [meta.get("algorithm"), meta.get("scheduler")]
    return f"{meta.get('sweep', 'run')} ({', '.join(str(p) for p in parts if p)})"


def _metric_label(metric: str) -> str:
    return f"{metric}: {METRIC_LABELS[metric]}" if metric in METRIC_LABELS else metric


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(values) -> str:
    return ", ".join(str(v) for v in values)
