"""A range test's files: curve.parquet, lr_range.png and lr_range.json."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.lr_range.finder import RangeResult, RangeTest
    from pipelines.records.storage import Location
    from pipelines.training.config import TrainConfig


def write_range_test(out: Location, result: RangeResult, cfg: TrainConfig, test: RangeTest,
                     sweep: str) -> dict[str, Any]:
    """curve.parquet, lr_range.png and lr_range.json in `out`; returns the JSON."""
    from pipelines.lr_range.plot import plot_lr_range  # matplotlib only when drawing
    from pipelines.records import tables as res

    res.write_parquet(result.curve, out / "curve.parquet")
    title = f"{sweep}: {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}"
    plot_lr_range(result.curve, result.steepest, result.valley, title,
                  str(out / "lr_range.png"), note=result.why_no_suggestion)
    summary = {"sweep": sweep, "model": cfg.model, "optimizer": cfg.optimizer,
               "batch_size": cfg.batch_size, "test": dataclasses.asdict(test),
               "steps": len(result.curve), "stopped": result.stopped,
               "steepest": result.steepest, "valley": result.valley,
               "suggestion": result.suggestion,
               "why_no_suggestion": result.why_no_suggestion}
    res.write_json(summary, out / "lr_range.json")
    return summary
