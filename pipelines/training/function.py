"""A sweep's own training function, run under the built-in trainers' contract.

    def fn(config, report, resume_state=None):
        ...
        for epoch in ...:
            report({"val_rmse": rmse, "train_mse": mse}, state={"model": net.state_dict()})

`report(metrics, state=None)` is called once per epoch; `metrics` holds numbers by
name, the sweep's metric among them. `state`, when given, is what a retry, a
pause (HyperBand) or a --resume hands back as `resume_state`: it is saved with
torch.save at once and loaded with weights_only=True (tensors, numbers,
strings and containers of them). Each report is numbered as an epoch, counting on
from a resumed state, so that no epoch is lost or counted twice.

No Ray here: whoever runs it hands in `save(metrics, state)`.
"""

from __future__ import annotations

import inspect
from numbers import Real
from typing import Any, Callable, Mapping

import torch

from pipelines.records.tables import NOT_EPOCH_METRICS, STEPS_KEY, TUNE_RESULT_KEYS
from pipelines.training.loop import Metrics, State

__all__ = ["EPOCH_KEY", "NoMetricReported", "run_function"]

EPOCH_KEY = "epoch"  # added to every report: the epoch's number, from 1
# names the trial's report adds (node_id, the checkpoint's rank), Ray Tune fills in, or
# the recorder reads as the built-in trainers' (step windows, patience's stop): a metric
# of that name would be overwritten, dropped or misread
RESERVED = TUNE_RESULT_KEYS | NOT_EPOCH_METRICS | {"node_id", STEPS_KEY}
# save(metrics, state): state is {"epoch": n, "state": the function's state}, or None
Save = Callable[[Metrics, "State | None"], None]


class NoMetricReported(RuntimeError):
    """The function returned without reporting its sweep's metric once."""


def run_function(fn: Callable[..., Any], config: Any, *, metric: str, save: Save,
                 resume_state: State | None = None, also: tuple[str, ...] = ()) -> int:
    """Run `fn(config, report, resume_state)`; returns the epochs it reported in all.
    `resume_state` is a saved {"epoch", "state"} (as `save` received it); every report
    holds `metric` and the further objectives `also`."""
    epoch = int(resume_state[EPOCH_KEY]) if resume_state else 0
    resumable = _takes_resume_state(fn)

    def report(metrics: Mapping[str, Any], state: State | None = None) -> None:
        nonlocal epoch
        values = _checked(metrics, metric, epoch + 1, also)
        if state is not None and not resumable:
            raise TypeError(f"{_name(fn)} reports a state but takes no resume_state; define "
                            f"it as {_name(fn)}(config, report, resume_state=None)")
        if state is not None:  # now, not at the first restore
            _check_loadable(state)
        epoch += 1
        save({**values, EPOCH_KEY: epoch}, None if state is None else
             {EPOCH_KEY: epoch, "state": state})

    kwargs = {"resume_state": resume_state["state"] if resume_state else None} \
        if resumable else {}
    fn(config, report, **kwargs)
    if epoch == 0:
        raise NoMetricReported(f"{_name(fn)} returned without reporting {metric!r}; call "
                               f"report({{{metric!r}: value}}) once per epoch")
    return epoch


def _checked(metrics: Mapping[str, Any], metric: str, epoch: int,
             also: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"report() takes a dict of metrics, got {type(metrics).__name__}")
    for objective in (metric, *also):
        if objective not in metrics:
            what = "metric" if objective == metric else "objective"
            raise ValueError(f"report() without the sweep's {what} {objective!r} (got "
                             f"{', '.join(map(str, metrics)) or 'nothing'}); report it "
                             f"every epoch")
        value = _plain(metrics[objective])
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"report(): {objective!r} must be a number, got {value!r}")
    reserved = sorted(RESERVED & set(metrics))
    if reserved:
        raise ValueError(f"report(): {reserved} are set by raysweep; rename them")
    if EPOCH_KEY in metrics and metrics[EPOCH_KEY] != epoch:
        raise ValueError(f"report() is once per epoch: this is epoch {epoch}, but it "
                         f"reported epoch={metrics[EPOCH_KEY]!r}; drop 'epoch' from the metrics")
    return {str(k): _plain(v) for k, v in metrics.items() if k != EPOCH_KEY}


# what torch.load(weights_only=True) reads back, besides containers of them
LOADABLE = (torch.Tensor, int, float, complex, str, bytes, bool, type(None), torch.dtype,
            torch.device, torch.Size)


def _check_loadable(value: Any, where: str = "state") -> None:
    """A state that torch.load(weights_only=True) could not read back is refused when
    it is reported, not when a retry or --resume needs it."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(key, f"{where} key {key!r}")
            _check_loadable(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]")
    elif not isinstance(value, LOADABLE):
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise TypeError(f"report(state=...): {where} is a {kind}; a state holds tensors, "
                        f"numbers, strings and containers of them (it is loaded with "
                        f"weights_only=True), e.g. a numpy array as torch.from_numpy(a)")


def _plain(value: Any) -> Any:
    """Numbers as Python numbers (a 0-d tensor or numpy scalar via .item())."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (int, float)):
        try:
            return item()
        except (ValueError, RuntimeError):  # not a scalar: reported as given
            return value
    return value


def _takes_resume_state(fn: Callable[..., Any]) -> bool:
    params = inspect.signature(fn).parameters
    return "resume_state" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                           for p in params.values())


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
