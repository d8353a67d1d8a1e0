"""`--batch-size auto`: the batch-size finder (pipelines.batch_size) before the
sweep, and the sweep's batch size fixed at what it finds, no longer searched.

The learning rate follows by the linear scaling rule without a change here: a
config's lr is per 256 examples (pipelines.training.optim), so a trial at the
found batch B gets an optimizer lr of lr * B / 256, whether lr is searched or
fixed. The record in run.json says so ("lr_rule": "linear").

The finder runs on the device the trials train on: a GPU with --gpus-per-trial,
else the CPU, where it needs a cap (--max-memory-mb or the sweep's peak_mem_mb
constraint). With a fraction of a GPU per trial, give --max-memory-mb: without
a cap the finder fills the whole GPU, of which each trial gets only its share.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from pipelines.errors import UsageError
from pipelines.search.space import describe
from pipelines.training import optim
from pipelines.tuning.run_plan import RunPlan, with_sweep

if TYPE_CHECKING:
    from pipelines.batch_size import Probe
    from pipelines.data.images import DataSpec
    from pipelines.data.seg_folder import SegSpec

KEY = "batch_size"
LR_RULE = "linear"


# The share of a memory constraint the fixed batch may use: trials re-measure their step
# against the constraint at their start, and a measure on a CPU varies by ~5%.
CAP_MARGIN = 0.9


def check(p: RunPlan) -> None:
    """--batch-size as the plan can run it (before anything is created): 'auto' only,
    a built-in task, something left to search, a device and a cap to search on."""
    from pipelines.batch_size import memory_cap, search_device

    mode = p.options.batch_size
    if mode is None:
        return
    if mode != "auto":
        raise UsageError(f"--batch-size {mode!r}: the only mode is 'auto'")
    if p.sweep.runs_function:
        raise UsageError("--batch-size auto for a user trainable: its model is its own, and "
                         "the batch-size finder cannot build it; drop --batch-size and fix "
                         "batch_size in the sweep")
    if set(p.sweep.space) == {KEY}:
        raise UsageError("--batch-size auto fixes batch_size, the only parameter the sweep "
                         "searches; search something else too, or run pipelines.bs_find")
    memory_cap(p.options.max_memory_mb, p.sweep, search_device(p.options.gpus_per_trial))


def fix_batch(p: RunPlan, data: DataSpec | SegSpec) -> tuple[RunPlan, dict[str, Any]]:
    """Run the finder on the sweep's largest configuration and return the plan with
    batch_size fixed at its result, and the record for run.json."""
    from pipelines.batch_size import find_batch_size, memory_cap, probes_frame, search_device

    device = search_device(p.options.gpus_per_trial)
    cap = memory_cap(p.options.max_memory_mb, p.sweep, device)
    if cap is not None and "peak_mem_mb" in p.constraints:
        # each trial measures its step again against the same limit; a CPU's measure
        # varies by ~5% (pipelines.training.cost), so the batch keeps a margin below it
        cap *= CAP_MARGIN
    limit = f"under {cap:g} MB" if cap is not None else "until out of memory"
    print(f"batch size finder on {device}: {limit}", file=sys.stderr, flush=True)
    result = find_batch_size(p.sweep, p.budget, data, cap, device, progress=_show)
    found = result.batch_size
    print(f"batch size finder: batch_size {found} for every trial", file=sys.stderr,
          flush=True)
    record = {**result.summary(), "lr_rule": LR_RULE,
              "lr_note": f"lr is per {optim.LR_REFERENCE_BATCH} examples: each trial's "
                         f"optimizer gets lr * {found} / {optim.LR_REFERENCE_BATCH}",
              "before": _before(p),
              "probes": probes_frame(result).to_dict(orient="records")}
    return apply(p, record), record


def apply(p: RunPlan, record: dict[str, Any]) -> RunPlan:
    """The plan with a recorded batch size fixed (a fresh run, or a resumed one):
    batch_size leaves the space (and every stage) and becomes a fixed value."""
    space = {k: v for k, v in p.sweep.space.items() if k != KEY}
    stages = tuple(dataclasses.replace(s, params=tuple(k for k in s.params if k != KEY))
                   for s in p.sweep.stages)
    sweep = dataclasses.replace(p.sweep, space=space, fixed={**p.sweep.fixed,
                                                             KEY: record[KEY]},
                                stages=tuple(s for s in stages if s.params))
    # a budget's own batch_size would win over the sweep's fixed one: it goes too
    budget = dataclasses.replace(p.budget, fixed={k: v for k, v in p.budget.fixed.items()
                                                  if k != KEY})
    return with_sweep(dataclasses.replace(p, budget=budget), sweep)


def _before(p: RunPlan) -> dict[str, Any] | None:
    """The batch size as the sweep had it: its domain, or its fixed value."""
    if KEY in p.sweep.space:
        return describe({KEY: p.sweep.space[KEY]})[KEY]
    return {"type": "fixed", "value": p.fixed[KEY]} if KEY in p.fixed else None


def _show(probe: Probe) -> None:
    print(f"batch size finder: {probe.line()}", file=sys.stderr, flush=True)
