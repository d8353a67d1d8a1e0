"""The batch-size finder: the largest batch of a sweep's model and data whose
training step fits in memory, searched as Lightning's BatchSizeFinder searches
in its "binsearch" mode: double the batch from START_BATCH until a step does
not fit, then bisect between the last batch that fit and the first that did not.

A step fits when its peak memory (pipelines.training.cost.measure_peak_mb, one
full step of the task's probe) is at most the cap. On a GPU without a cap, it
fits when it does not run out of memory; on a CPU there must be a cap (running
out of memory there would take the machine down with the search). The search
stops at the training split's examples per epoch, and at `max_batch` if given.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from pipelines.errors import UsageError
from pipelines.search.space import Choice, candidate_values
from pipelines.search.sweep import Budget, Sweep, start_values
from pipelines.training import cost
from pipelines.training.config import BaseConfig
from pipelines.training.loop import default_device
from pipelines.training.tasks import Task, task

__all__ = ["BatchSizeResult", "Probe", "binsearch", "check_buildable", "find_batch_size",
           "memory_cap", "probe_config", "search_device"]

START_BATCH = 2  # Lightning's init_val
# Config keys whose largest value needs the most memory (channels, levels, crop side):
# the finder takes it. Choices it cannot order (models, optimizers) are probed instead.
SIZE_KEYS = ("width", "depth", "crop_size")
CHOICE_KEYS = ("model", "optimizer")


@dataclass(frozen=True)
class Probe:
    """One batch size tried: its step's peak memory, and whether that fits."""

    batch_size: int
    peak_mem_mb: float  # math.inf: it ran out of GPU memory
    fits: bool

    def line(self) -> str:
        """The probe as the finder's progress shows it."""
        return (f"batch {self.batch_size}: {self.peak_mem_mb:,.1f} MB, "
                f"{'fits' if self.fits else 'too large'}")


@dataclass(frozen=True)
class BatchSizeResult:
    """What the finder found, and how."""

    batch_size: int  # the largest batch that fits
    cap_mb: float | None  # None: as much as the GPU has
    device: str
    model: str
    config: dict[str, Any]  # the configuration probed, at the batch found
    probes: tuple[Probe, ...]  # in the order they ran
    limit: str  # what ended the search: "memory", "training split" or "max_batch"
    measure: str  # how the memory was measured (cost.measure_name)

    @property
    def peak_mem_mb(self) -> float:
        """The found batch's measured peak."""
        return next(p.peak_mem_mb for p in reversed(self.probes)
                    if p.batch_size == self.batch_size)

    def summary(self) -> dict[str, Any]:
        """batch_size.json's content (also what run.json keeps of a --batch-size auto)."""
        return {"batch_size": self.batch_size, "peak_mem_mb": self.peak_mem_mb,
                "cap_mb": self.cap_mb, "device": self.device, "model": self.model,
                "limit": self.limit, "measure": self.measure, "config": self.config,
                "search": "double from 2 until a step does not fit, then bisect "
                          "(Lightning's BatchSizeFinder, binsearch)"}


def check_buildable(sweep: Sweep, name: str = "the sweep") -> None:
    """A UsageError for a sweep (called `name`) whose model the finder cannot build:
    one with its own trainable."""
    if sweep.runs_function:
        raise UsageError(f"{name} runs its own trainable, which has no model the batch-size "
                         f"finder can build; fix batch_size in the sweep instead")


def memory_cap(max_memory_mb: float | None, sweep: Sweep,
               device: torch.device) -> float | None:
    """The finder's cap in MB: --max-memory-mb, else the sweep's peak_mem_mb
    constraint; None on a GPU without either (its own memory is the cap). A
    UsageError on a CPU without either."""
    cap = max_memory_mb if max_memory_mb is not None else sweep.constraints.get("peak_mem_mb")
    if cap is not None and not (cap > 0 and math.isfinite(cap)):
        raise UsageError(f"--max-memory-mb must be a number of MB > 0, got {cap:g}")
    if cap is None and device.type != "cuda":
        raise UsageError("the batch-size finder on a CPU needs a memory cap: pass "
                         "--max-memory-mb N (MB), or give the sweep constraints="
                         "{'peak_mem_mb': N}")
    return cap


def search_device(gpus_per_trial: float) -> torch.device:
    """Where a run's trials train, so where the finder measures for them: a GPU with
    --gpus-per-trial (a UsageError if this machine has none), else the CPU."""
    if gpus_per_trial <= 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("--batch-size auto measures on this machine's GPU for trials with "
                         "--gpus-per-trial, and it has none; run the driver on a GPU node, or "
                         "run pipelines.bs_find there and fix batch_size in the sweep")
    return torch.device("cuda")


def find_batch_size(sweep: Sweep, budget: Budget, data: Any, cap_mb: float | None,
                    device: torch.device | None = None, *, max_batch: int | None = None,
                    progress: Callable[[Probe], None] | None = None) -> BatchSizeResult:
    """The largest batch of `sweep`'s largest configuration (`probe_config`) whose
    training step fits in `cap_mb` (None: on a GPU, until it runs out of memory).
    `data` is the task's prepared data (what Task.prepare_data returned); `progress`
    is called with each probe as it finishes. A UsageError for a sweep with its own
    trainable, and when not even a batch of 1 fits."""
    check_buildable(sweep)
    the_task = task(sweep.task)
    device = device or default_device()
    opened = the_task.open_data(data)
    cfg = probe_config(sweep, budget, opened, device)
    examples = the_task.examples(cfg, opened)
    top = min(examples, max_batch) if max_batch is not None else examples
    probes: list[Probe] = []

    def fits(batch_size: int) -> bool:
        peak = the_task.probe(dataclasses.replace(cfg, batch_size=batch_size), opened,
                              device).peak_mem_mb
        probe = Probe(batch_size, peak, math.isfinite(peak) and (cap_mb is None or peak <= cap_mb))
        probes.append(probe)
        if progress is not None:
            progress(probe)
        return probe.fits

    last_fit, first_failure = binsearch(fits, top)
    if last_fit == 0:
        raise UsageError(f"not even a batch of 1 fits: one training step of {cfg.model} "
                         f"needs {probes[-1].peak_mem_mb:,.1f} MB"
                         f"{f' (cap {cap_mb:g} MB)' if cap_mb is not None else ''}; raise "
                         f"--max-memory-mb or make the model smaller")
    limit = "memory" if first_failure is not None else \
        "training split" if top == examples else "max_batch"
    found = dataclasses.replace(cfg, batch_size=last_fit)
    return BatchSizeResult(last_fit, cap_mb, str(device), cfg.model,
                           dataclasses.asdict(found), tuple(probes), limit,
                           cost.measure_name(device))


def binsearch(fits: Callable[[int], bool], top: int) -> tuple[int, int | None]:
    """Lightning's binsearch over `fits(batch)`: double from START_BATCH (at most to
    `top`) until a batch does not fit, then bisect between the last that fit and it.
    Returns (the largest batch found to fit, 0 if none; the smallest found not to,
    None if `top` fits)."""
    last_fit, first_failure = 0, None
    batch = min(START_BATCH, top)
    while True:
        if not fits(batch):
            first_failure = batch
            break
        last_fit = batch
        if batch >= top:
            break
        batch = min(2 * batch, top)
    while first_failure is not None and first_failure - last_fit > 1:
        middle = (last_fit + first_failure) // 2
        if fits(middle):
            last_fit = middle
        else:
            first_failure = middle
    return last_fit, first_failure


def probe_config(sweep: Sweep, budget: Budget, data: Any,
                 device: torch.device | None = None) -> BaseConfig:
    """The configuration whose batch size the finder searches: the sweep's fixed
    values (and its budget's) with every searched parameter at its start value,
    but the memory-hungriest model of the space. That is: each searched size key
    (SIZE_KEYS: width, depth, crop_size) at its largest candidate value, and of the
    searched choices among CHOICE_KEYS (model, optimizer), the combination whose
    training step at the start batch size measures the highest peak (parameters
    break a tie). A batch that fits this configuration fits every other one that
    differs from it in those keys alone, as far as memory grows with them."""
    the_task = task(sweep.task)
    device = device or default_device()
    base = {**start_values(sweep.space, sweep.config_class), **sweep.fixed, **budget.fixed,
            **sweep.horizon(budget, seed=0)}
    for key in SIZE_KEYS:
        sizes = [v for v in candidate_values(sweep.space[key]) if isinstance(v, (int, float))] \
            if key in sweep.space else []
        if sizes:
            base[key] = max(sizes)
    choices = {k: candidate_values(sweep.space[k]) for k in CHOICE_KEYS
               if isinstance(sweep.space.get(k), Choice)}
    candidates = [_config(the_task, {**base, **dict(zip(choices, combo))})
                  for combo in itertools.product(*choices.values())]
    valid = [c for c in candidates if c is not None]
    if not valid:  # the first candidate again, for its error
        try:
            the_task.config_class.from_dict({**base, **{k: v[0] for k, v in choices.items()}})
        except (TypeError, ValueError) as e:
            raise UsageError(f"the batch-size finder's configuration (start values, largest "
                             f"sizes): {e}") from None
    if len(valid) == 1:
        return valid[0]

    def need(cfg: BaseConfig) -> tuple[float, int]:
        measured = the_task.probe(cfg, data, device)
        return measured.peak_mem_mb, measured.params

    return max(valid, key=need)


def _config(the_task: Task[Any, Any, Any, Any], values: dict[str, Any]) -> BaseConfig | None:
    """`values` as the task's config; None where they do not go together (e.g. nesterov
    with Adam, in a space that searches the optimizer)."""
    try:
        cfg: BaseConfig = the_task.config_class.from_dict(values)
    except (TypeError, ValueError):
        return None
    return cfg
