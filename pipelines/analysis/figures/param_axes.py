"""Searched hyperparameters on an axis: where each value goes, and the axis's
scale, limits and ticks, from the parameter's description in run.json's space
({"type": "LogUniform", "low": ..., "high": ...}, {"type": "Choice", "options": [...]})."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from pipelines.analysis.figures.style import MAX_LABEL
from pipelines.analysis.formatting import truncate

JITTER = 0.15  # half-width of a Choice's sideways spread, in option-index units


def is_log(spec: dict) -> bool:
    """Whether the parameter is searched on a log scale."""
    return spec.get("type") == "LogUniform" or bool(spec.get("log"))


def param_positions(values: pd.Series, spec: dict, jitter: bool = False) -> np.ndarray:
    """Positions of a parameter's values on its axis: the value, or a Choice's
    option index (spread sideways, seeded, when `jitter`)."""
    if spec.get("type") != "Choice":
        return values.astype(float).to_numpy()
    index = {str(o): i for i, o in enumerate(spec["options"])}
    x = np.array([index.get(str(v), np.nan) for v in values], dtype=float)
    if jitter:  # seeded: the same run draws the same figure
        x = x + np.random.default_rng(0).uniform(-JITTER, JITTER, len(x))
    return x


def set_param_xaxis(ax: Axes, name: str, spec: dict, units: Mapping[str, str]) -> None:
    """The x axis of a parameter: its label with its unit (from `units`), log scale
    for log domains, the domain's bounds as limits, a Choice's options as ticks."""
    unit = units.get(name)
    ax.set_xlabel(f"{name} ({unit})" if unit else name)
    if spec.get("type") == "Choice":
        labels = [truncate(str(o), MAX_LABEL) for o in spec["options"]]
        rotate = sum(len(s) for s in labels) > 20
        ax.set_xticks(range(len(labels)), labels, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        return
    low, high = spec.get("low"), spec.get("high")
    if is_log(spec):
        ax.set_xscale("log")
        if low and high:
            ax.set_xlim(low / 1.3, high * 1.3)
    elif low is not None and high is not None:
        pad = 0.05 * (high - low or 1)
        ax.set_xlim(low - pad, high + pad)
    if spec.get("type") == "IntUniform" and not is_log(spec):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def unit_scale(values: pd.Series, spec: dict) -> np.ndarray:
    """A parameter's values mapped to [0, 1]: by the domain's bounds (in log for
    log domains), or a Choice's option index."""
    if spec.get("type") == "Choice":
        n = len(spec["options"])
        return param_positions(values, spec) / (n - 1) if n > 1 else np.full(len(values), 0.5)
    v = values.astype(float).to_numpy()
    low, high = spec.get("low", np.nanmin(v)), spec.get("high", np.nanmax(v))
    if is_log(spec):
        v, low, high = np.log10(v), math.log10(low), math.log10(high)
    return span_scale(pd.Series(v), low, high)


def span_scale(values: pd.Series, low: float, high: float) -> np.ndarray:
    """Values mapped linearly from [low, high] to [0, 1]; all 0.5 when low == high."""
    v = np.asarray(values, dtype=float)
    return (v - low) / (high - low) if high > low else np.full(len(v), 0.5)
