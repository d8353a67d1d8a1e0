"""What a configuration costs before it trains: its trainable parameters and one
training step's peak memory, and which of a sweep's start constraints
(pipelines.records.tables.START_CONSTRAINTS) that cost breaks.

The memory of a step (`measure_peak_mb`) is measured, not estimated:

- on a GPU: `torch.cuda.max_memory_allocated` over the step, less what was
  allocated when it started (the peak statistics reset first); a step that runs
  out of memory costs math.inf, and the allocator's cache is emptied after it.
- on a CPU: the process's resident-set growth. glibc's `malloc_trim(0)` first
  hands memory freed by earlier steps back to the system (else the step would
  reuse it and seem to cost nothing; this is what makes the measure work in a
  Ray actor that already ran other trials); then the baseline VmRSS is read,
  the high-water mark is reset (writing "5" to /proc/self/clear_refs), the step
  runs, and VmHWM (/proc/self/status) less the baseline is its peak. Where
  clear_refs cannot be written (not Linux, or a locked-down /proc), the peak is
  the process's lifetime maximum (`ru_maxrss`) less the baseline, or the RSS
  growth after the step if that is larger: a lower bound when the process peaked
  higher before the step. `measure_name(device)` says which one is in use.

How repeatable the CPU measure is (2-core CPU, simple_cnn on 8x8 digits, 8 probes
each): within a process, the same batch measures within 5% nearly always, with
now and then a jump of one activation's size (glibc's heap reuses a freed block or
not: up to ~20% for a step of 20 MB), and the same in a process that trained
before; across processes the heap's state can move a small step's figure by up
to ~25%. Blocks above glibc's mmap threshold (32 MB at most) are mapped and
unmapped one by one, so a step of large tensors measures the same to the page.
The measure grows with the batch: four times the batch, ~3.5-4 times the memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import math
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch

from pipelines.records.tables import START_CONSTRAINTS

__all__ = ["Cost", "count_params", "exceeded", "measure_name", "measure_peak_mb",
           "measure_step_mb"]

MB = 2 ** 20  # bytes
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_HIGH_WATER_MARK = "5"  # clear_refs: reset the peak resident set size (proc(5))
# The batch of the unmeasured step before the measured one: what a process sets up at its
# first step (thread pools, kernels: ~150 MB on a CPU) is no configuration's cost.
SETUP_BATCH = 2


@dataclass(frozen=True)
class Cost:
    """A configuration's cost, known before it trains."""

    params: int  # trainable parameters
    peak_mem_mb: float  # one training step's peak memory (see the module's docstring)


def count_params(model: torch.nn.Module) -> int:
    """The model's trainable parameters (those that require a gradient)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def exceeded(cost: Cost, limits: Mapping[str, float]) -> list[str]:
    """The limits `cost` breaks, one line each (e.g. "params 2,345,678 > 1,000,000");
    [] when it breaks none. `limits` are over START_CONSTRAINTS."""
    unknown = sorted(set(limits) - set(START_CONSTRAINTS))
    if unknown:
        raise ValueError(f"unknown start constraint(s) {unknown}; known: "
                         f"{', '.join(START_CONSTRAINTS)}")
    values = {"params": float(cost.params), "peak_mem_mb": cost.peak_mem_mb}
    shown = {"params": "{:,.0f}", "peak_mem_mb": "{:,.1f}"}
    return [f"{name} {shown[name].format(values[name])} > {_number(limit)}"
            for name, limit in limits.items() if not values[name] <= limit]


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def measure_peak_mb(step: Callable[[], object], device: torch.device) -> float:
    """Run `step()` once and return its peak memory in MB, as the module's
    docstring describes (math.inf: it ran out of GPU memory)."""
    if device.type == "cuda":
        return _cuda_peak_mb(step, device)
    return _cpu_peak_mb(step)


def measure_step_mb(step: Callable[[int], object], batch_size: int,
                    device: torch.device) -> float:
    """The peak memory in MB of `step(batch_size)`, one training step at that batch
    (its model and optimizer built in it, so that they count): after an unmeasured
    `step(SETUP_BATCH)` (or smaller), the process's first-call set-up."""
    setup = measure_peak_mb(lambda: step(min(SETUP_BATCH, batch_size)), device)
    return measure_peak_mb(lambda: step(batch_size), device) if math.isfinite(setup) else setup


def measure_name(device: torch.device) -> str:
    """How `measure_peak_mb` measures on `device`, in words (for the files that
    record a measurement)."""
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated growth over one training step"
    if _can_reset_high_water_mark():
        return "resident-set growth of one training step (VmHWM after clear_refs, over VmRSS)"
    return "resident-set growth of one training step (ru_maxrss over VmRSS: a lower bound)"


def _cuda_peak_mb(step: Callable[[], object], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    try:
        step()
        torch.cuda.synchronize(device)
    except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one
        if not _out_of_memory(e):
            raise
        out_of_memory = True
    else:
        out_of_memory = False
    if out_of_memory:  # out of the except block: the exception held the step's tensors
        gc.collect()
        torch.cuda.empty_cache()
        return math.inf
    return (torch.cuda.max_memory_allocated(device) - start) / MB


def _out_of_memory(error: RuntimeError) -> bool:
    """A GPU's out-of-memory error, as the allocator, cuBLAS or cuDNN raise it
    (Lightning's is_oom_error tells them the same way)."""
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or \
        "CUBLAS_STATUS_ALLOC_FAILED" in text or "CUDNN_STATUS_NOT_SUPPORTED" in text


def _cpu_peak_mb(step: Callable[[], object]) -> float:
    # no gc.collect() first: in a process that imported torch it takes ~0.1-1 s, and
    # tensors are freed by reference counting as soon as the step drops them
    _malloc_trim()
    before = _status_kb("VmRSS")
    if _can_reset_high_water_mark():
        CLEAR_REFS.write_text(RESET_HIGH_WATER_MARK)
        step()
        return max(_status_kb("VmHWM") - before, 0) / 1024
    step()
    after = max(_max_rss_kb(), _status_kb("VmRSS"))
    return max(after - before, 0) / 1024


@functools.lru_cache(maxsize=1)
def _can_reset_high_water_mark() -> bool:
    try:
        CLEAR_REFS.write_text(RESET_HIGH_WATER_MARK)
        return "VmHWM" in STATUS.read_text()
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def _malloc_trim() -> None:
    """Return the heap's free memory to the system (glibc only; elsewhere a no-op)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _status_kb(field: str) -> int:
    """A /proc/self/status field in kB (VmRSS, VmHWM); without /proc, ru_maxrss."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return _max_rss_kb()


def _max_rss_kb() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, kB elsewhere
