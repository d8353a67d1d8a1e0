"""A figure's canvas: built on `matplotlib.figure.Figure` with an Agg canvas,
never through pyplot, so drawing changes no global matplotlib state; saved as
one PNG atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipelines.records.storage import resolve

DPI = 100  # pixels per inch of the saved PNG


def figure(width: float, height: float, nrows: int = 1, ncols: int = 1,
           sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure of `width` x `height` inches and its grid of axes, row by row."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel())


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (a temp file renamed into place); returns the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    resolve(str(path)).write_bytes(buffer.getvalue())  # temp file + rename
    return Path(path)


def note(ax: Axes, text: str) -> None:
    """An empty panel's message, in place of meaningless 0..1 ticks."""
    ax.set(xticks=[], yticks=[])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize="large", color="0.4")


def robust_ylim(ax: Axes, values: pd.Series) -> None:
    """Keep a few huge values (a diverging trial's loss) from flattening the rest:
    limit the y axis to the 10-90% quantiles widened by 3 spreads, saying so."""
    v = values.astype(float)
    v = v[np.isfinite(v)]
    if len(v) < 4:
        return
    q10, q90 = float(v.quantile(0.1)), float(v.quantile(0.9))
    spread = max(q90 - q10, 1e-12)
    low, high = max(float(v.min()), q10 - 3 * spread), min(float(v.max()), q90 + 3 * spread)
    off = (v < low) | (v > high)
    if off.any():
        pad = 0.05 * (high - low or 1)
        ax.set_ylim(low - pad, high + pad)
        ax.text(0.99, 0.01, f"{int(off.sum())} point(s) off scale",
                transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small")
