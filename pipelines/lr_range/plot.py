"""The range test's figure: loss against learning rate, with the suggestions.
Imported only where the figure is drawn, since it needs matplotlib."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.analysis.figures import canvas
from pipelines.analysis.formatting import LABEL_DIGITS, significant


def plot_lr_range(curve: pd.DataFrame, steepest: float | None, valley: float | None,
                  title: str, path: str | Path, note: str | None = None) -> Path:
    """The LR range test: loss against learning rate (log axis), raw and smoothed,
    with the suggestions marked, or `note` saying why there is none."""
    fig, (ax,) = canvas.figure(8, 4.6)
    ax.set_title(f"Learning-rate range test, {title}")
    if curve.empty:
        canvas.note(ax, "no steps recorded")
        return canvas.save(fig, path)
    ax.plot(curve["lr"], curve["loss"], color="0.75", lw=0.8, label="loss per step")
    ax.plot(curve["lr"], curve["smoothed_loss"], color="C0", lw=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (per 256 examples)", ylabel="training loss (cross-entropy)")
    canvas.robust_ylim(ax, curve["smoothed_loss"])
    for lr, name, color in ((steepest, "steepest descent", "C3"), (valley, "valley", "C2")):
        if lr is not None:
            ax.axvline(lr, color=color, ls="--", lw=1.2,
                       label=f"{name}: {significant(lr, LABEL_DIGITS)}")
    if steepest is None and valley is None:
        ax.text(0.02, 0.04, f"no suggestion: {note or 'the loss did not fall'}",
                transform=ax.transAxes, fontsize="small", wrap=True)
    ax.legend(loc="upper left", fontsize="small")
    return canvas.save(fig, path)
