"""`--lr-range auto`: a learning-rate range test before the sweep, and the
sweep's learning-rate domain narrowed around what it suggests.

The rule: [suggestion / 10, suggestion * 3], intersected with the sweep's own
domain. Smith's steepest-descent point (pipelines.lr_range) sits near the top
of the range where training is fast and stable, so the domain keeps a decade
below it and a little above it, short of where the loss blew up. When the
space searches the optimizer, each optimizer has its own range test and the
domain spans all of them. When the sweep does not search lr, the suggestion
becomes its fixed lr: for OneCycle that is the peak of the cycle.

Everything is in the sweep's unit, lr per 256 examples, so one test at one
batch size serves every batch size the sweep tries (the linear scaling rule).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.errors import UsageError
from pipelines.records.storage import Location
from pipelines.search.space import Choice, LogUniform, describe
from pipelines.search.sweep import start_values
from pipelines.training.config import TrainConfig
from pipelines.tuning.run_plan import RunPlan, with_sweep

if TYPE_CHECKING:
    from pipelines.data.images import DataSpec
    from pipelines.lr_range.finder import RangeResult, RangeTest

BELOW, ABOVE = 10.0, 3.0  # the narrowed domain: [suggestion / BELOW, suggestion * ABOVE]
RULE = (f"lr in [suggestion / {BELOW:g}, suggestion * {ABOVE:g}] (steepest descent of the "
        f"smoothed loss, per 256 examples), within the sweep's own domain; across "
        f"optimizers, the span of their ranges; a fixed lr becomes the suggestion")
RANGE_DIR = "lr_range"


@dataclass
class Narrowing:
    sweep: str
    test: RangeTest
    results: dict[str, tuple[TrainConfig, RangeResult]]  # by optimizer
    record: dict[str, Any]  # what run.json keeps: the rule, the suggestions, the domains


def reference_configs(p: RunPlan) -> list[TrainConfig]:
    """The configurations the range test runs: every parameter at its start value
    (as staged tuning starts), once per optimizer the space can choose."""
    base = {**start_values(p.sweep.space), **p.fixed}
    domain = p.sweep.space.get("optimizer")
    optimizers = list(domain.options) if isinstance(domain, Choice) else [base["optimizer"]]
    configs = []
    for optimizer in optimizers:
        values = {**base, "optimizer": optimizer}
        if optimizer != "sgd":
            values["nesterov"] = False
        configs.append(TrainConfig.from_dict(values))
    return configs


def narrow(p: RunPlan, data: DataSpec) -> tuple[RunPlan, Narrowing]:
    """Run the range test(s) and return the plan with the narrowed lr domain."""
    from pipelines.data.images import open_split
    from pipelines.lr_range.finder import RangeTest, range_test

    test, train_val = RangeTest(), open_split(data)
    results: dict[str, tuple[TrainConfig, RangeResult]] = {}
    suggestions: dict[str, float] = {}
    for cfg in reference_configs(p):
        print(f"lr range test: {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}, up to "
              f"{test.num_iter} steps", file=sys.stderr, flush=True)
        result = range_test(cfg, train_val, test)
        if result.suggestion is None:
            raise UsageError(f"--lr-range auto: no learning rate trains {cfg.model} with "
                             f"{cfg.optimizer} ({result.why_no_suggestion}); fix the model or "
                             f"run without --lr-range")
        print(f"lr range test: {cfg.optimizer} suggests lr {result.suggestion:.3g} per 256 "
              f"examples", file=sys.stderr, flush=True)
        results[cfg.optimizer] = (cfg, result)
        suggestions[cfg.optimizer] = result.suggestion
    record = {"rule": RULE, "suggestions": suggestions,
              "before": describe(p.sweep.space).get("lr"),
              "after": narrowed_domain(p, suggestions)}
    return apply(p, record), Narrowing(p.sweep_name, test, results, record)


def narrowed_domain(p: RunPlan, suggestions: dict[str, float]) -> dict[str, Any]:
    """The lr domain (as run.json describes one) around the suggestions."""
    domain = p.sweep.space.get("lr")
    if domain is None:
        if len(suggestions) > 1:
            raise UsageError(f"--lr-range auto: the sweep searches the optimizer "
                             f"({', '.join(suggestions)}) but fixes lr, and one lr cannot "
                             f"suit them all; search lr too")
        return {"type": "fixed", "value": next(iter(suggestions.values()))}
    if isinstance(domain, Choice):
        raise UsageError("--lr-range auto narrows a range of lr, and this sweep's lr is a "
                         "Choice; make it a LogUniform or run without --lr-range")
    low = max(domain.low, min(suggestions.values()) / BELOW)
    high = min(domain.high, max(suggestions.values()) * ABOVE)
    if low >= high:
        shown = ", ".join(f"{name} {s:.3g}" for name, s in suggestions.items())
        raise UsageError(f"--lr-range auto: the range test suggests lr {shown}, outside the "
                         f"sweep's lr domain [{domain.low:g}, {domain.high:g}]; widen the "
                         f"domain or run without --lr-range")
    grid = (low, math.sqrt(low * high), high)
    return describe({"lr": LogUniform(low, high, grid=grid)})["lr"]


def apply(p: RunPlan, record: dict[str, Any]) -> RunPlan:
    """The plan with a recorded narrowing applied (a fresh run, or a resumed one)."""
    after = record["after"]
    if after["type"] == "fixed":
        sweep = dataclasses.replace(p.sweep, fixed={**p.sweep.fixed, "lr": after["value"]})
    else:
        lr = LogUniform(after["low"], after["high"], grid=tuple(after["grid"]))
        sweep = dataclasses.replace(p.sweep, space={**p.sweep.space, "lr": lr})
    return with_sweep(p, sweep)


def write(narrowing: Narrowing, run_dir: Location) -> dict[str, Any]:
    """Each test's curve, plot and summary under <run>/lr_range/<optimizer>/; returns
    the record for run.json."""
    from pipelines.lr_range.files import write_range_test

    for optimizer, (cfg, result) in narrowing.results.items():
        out = run_dir / RANGE_DIR / optimizer
        out.fs.create_dir(out.path, recursive=True)
        write_range_test(out, result, cfg, narrowing.test, narrowing.sweep)
    return {**narrowing.record, "curves": {name: f"{RANGE_DIR}/{name}/curve.parquet"
                                           for name in narrowing.results}}
