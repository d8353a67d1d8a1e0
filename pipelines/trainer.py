"""The trainer: a plain function of a validated config and the data.

It runs without Ray. Whoever runs it hands in `report(metrics, state)`, called
once per epoch with the epoch's metrics and a checkpointable state dict (its
tensors are live: save it during the call), and optionally a `resume_state`
loaded from such a save, to continue rather than restart.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from pipelines.augment import augment
from pipelines.config import BaseConfig, TrainConfig, effective_lr
from pipelines.data import MEAN, NUM_CLASSES, STD, TrainValData
from pipelines.optim import build_optimizer
from pipelines.schedules import build_schedule

Report = Callable[[dict, dict], None]
DIVERGENCE_CHECK_EVERY = 10  # steps between finiteness checks (each one syncs a GPU)
EVAL_BATCH = 1024


@dataclass(frozen=True)
class TrainResult:
    epochs: int
    best_score: float  # of the task's score (val_acc, val_miou); 0 without validation
    last_score: float
    diverged: bool
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_input(images_nhwc: np.ndarray, device: torch.device) -> torch.Tensor:
    return _normalise(torch.from_numpy(images_nhwc).to(device, non_blocking=True), device)


def _normalise(images_nhwc: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC to normalised float NCHW, on the device (channels_last memory:
    the permute is a view)."""
    x = images_nhwc.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN, device=device)[None, :, None, None]
    std = torch.tensor(STD, device=device)[None, :, None, None]
    return (x - mean) / std


@dataclass(frozen=True)
class Resident:
    """A split's images (uint8, NHWC) and labels held on the device, in the
    split's index order: batches are gathered there, with no host transfer per
    step."""

    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, data: TrainValData, idx: np.ndarray, device: torch.device) -> "Resident":
        return cls(torch.from_numpy(np.asarray(data.images[idx])).to(device),
                   torch.from_numpy(np.asarray(data.labels[idx])).to(device))


def _batches(data: TrainValData, idx: np.ndarray, batch_size: int, device: torch.device,
             order: torch.Tensor | None = None, resident: Resident | None = None
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, labels) batches of `idx` (sorted), in `order` if given.
    Batches read from the memory-mapped pool (sorted reads keep them sequential
    on disk), or from `resident` tensors: the same batches either way."""
    positions = np.arange(len(idx)) if order is None else order.numpy()
    for start in range(0, len(idx), batch_size):
        chunk = np.sort(positions[start:start + batch_size])
        if resident is not None:
            at = torch.from_numpy(chunk).to(device, non_blocking=True)
            yield _normalise(resident.images[at], device), resident.labels[at]
        else:
            rows = idx[chunk]
            yield (_to_input(data.images[rows], device),
                   torch.from_numpy(data.labels[rows]).to(device, non_blocking=True))


def use_resident(device: torch.device) -> bool:
    """On a GPU the split lives on the device; on a CPU every trial reads the one
    memory-mapped copy the page cache shares (a copy per trial would multiply it)."""
    return device.type == "cuda"


def autocast(cfg: BaseConfig, device: torch.device):
    """bf16 autocast where `cfg.precision` asks for it (auto: on CUDA)."""
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def fast_model(model: torch.nn.Module, cfg: BaseConfig, device: torch.device):
    """What runs the steps: channels_last on CUDA, compiled if `cfg.compile`. The
    state (checkpoints) stays the plain module's."""
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.compile else model


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TrainValData, device: torch.device,
             resident: Resident | None = None,
             cfg: BaseConfig | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the validation split (NaN if it is empty);
    under `cfg`'s autocast and test-time flip (`tta`) if given."""
    if len(data.val_idx) == 0:
        return math.nan, math.nan
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in _batches(data, data.val_idx, EVAL_BATCH, device, resident=resident):
        with autocast(cfg, device) if cfg else contextlib.nullcontext():
            logits = model(x).float()
            if getattr(cfg, "tta", False):
                logits = (logits + model(x.flip(3)).float()) / 2
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = len(data.val_idx)
    return loss_sum.item() / n, correct.item() / n


def _state(model, opt, schedule, epoch, best, generator) -> dict:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "schedule": schedule.state_dict(), "epoch": epoch, "best_score": best,
        "rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
    }


def train(cfg: TrainConfig, data: TrainValData, *, report: Report | None = None,
          resume_state: dict | None = None, device: torch.device | None = None,
          resident: bool | None = None) -> TrainResult:
    """Train `cfg.epochs` epochs (from `resume_state`'s epoch if given); stop at
    once if the loss becomes NaN or infinite. With an empty validation split
    (a final training run on every training image) the validation metrics are
    NaN and a plateau schedule follows the training loss. `resident`: keep the
    split on the device (default: on a GPU; see `use_resident`)."""
    cfg.validate()  # a TrainConfig built directly, not by from_dict, is checked too
    device = device or default_device()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes=NUM_CLASSES, width=cfg.width, depth=cfg.depth,
                        dropout=cfg.dropout).to(device)
    net = fast_model(model, cfg, device)
    on_device = use_resident(device) if resident is None else resident
    train_split = Resident.of(data, data.train_idx, device) if on_device else None
    val_split = Resident.of(data, data.val_idx, device) if on_device else None

    def evaluate_epoch() -> dict:
        val_loss, val_acc = evaluate(net, data, device, val_split, cfg)
        return {"val_loss": val_loss, "val_acc": val_acc}

    return fit(cfg, model, len(data.train_idx), device, score="val_acc",
               train_epoch=functools.partial(_train_epoch, net, cfg=cfg, data=data,
                                             device=device, resident=train_split),
               evaluate=evaluate_epoch, report=report, resume_state=resume_state)


def fit(cfg: BaseConfig, model: torch.nn.Module, train_size: int, device: torch.device, *,
        score: str, train_epoch: Callable, evaluate: Callable[[], dict],
        report: Report | None, resume_state: dict | None) -> TrainResult:
    """The epoch loop every task shares: optimizer and schedule from `cfg`, resume,
    one `train_epoch(opt, schedule, generator)` and `evaluate()` per epoch, a
    report with a checkpointable state, and a stop at a diverged loss. `score` is
    the validation metric whose best (highest) the state keeps."""
    generator = torch.Generator().manual_seed(cfg.seed)
    opt = build_optimizer(model.parameters(), cfg)
    schedule = build_schedule(opt, cfg, math.ceil(train_size / cfg.batch_size))
    first_epoch, best, last = 1, 0.0, 0.0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["optimizer"])
        schedule.load_state_dict(resume_state["schedule"])
        generator.set_state(resume_state["rng"])
        torch.set_rng_state(resume_state["torch_rng"])
        first_epoch = resume_state["epoch"] + 1
        best = resume_state.get("best_score", resume_state.get("best_val_acc", 0.0))

    for epoch in range(first_epoch, cfg.epochs + 1):
        train_loss, seen, epoch_s, diverged, lr = train_epoch(opt, schedule, generator)
        scores = evaluate()
        schedule.after_epoch(train_loss if math.isnan(scores["val_loss"]) else
                             scores["val_loss"])
        last = scores[score]
        best = max(best, last)  # max(0.0, nan) is 0.0: no validation, no best
        metrics = {"epoch": epoch, "train_loss": train_loss, **scores, "lr": lr,
                   "epoch_s": epoch_s, "images_per_s": seen / epoch_s, "diverged": diverged,
                   "effective_lr": effective_lr(cfg.lr, cfg.batch_size)}
        if report is not None:
            report(metrics, _state(model, opt, schedule, epoch, best, generator))
        if diverged:
            return TrainResult(epoch, best, last, True, model)
    return TrainResult(cfg.epochs, best, last, False, model)


def _train_epoch(model, opt, schedule, generator: torch.Generator, *, cfg: TrainConfig,
                 data: TrainValData, device: torch.device, resident: Resident | None):
    """One pass over the training split."""
    order = torch.randperm(len(data.train_idx), generator=generator)

    def loss_of(x, y):
        x = augment(x, crop_padding=cfg.crop_padding, flip_prob=cfg.flip_prob,
                    generator=generator)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(cfg, device):
            logits = model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)

    return run_steps(model, opt, schedule, device, loss_of,
                     _batches(data, data.train_idx, cfg.batch_size, device, order, resident))


def run_steps(model, opt, schedule, device: torch.device, loss_of: Callable,
              batches: Iterator[tuple[torch.Tensor, torch.Tensor]]):
    """Optimizer steps over `batches`, `loss_of(x, y)` each; returns (mean loss,
    examples, seconds, diverged, learning rate of the last step). The loss is read
    back only every DIVERGENCE_CHECK_EVERY steps (each read syncs a GPU)."""
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    seen, lr = 0, opt.param_groups[0]["lr"]
    for step, (x, y) in enumerate(batches):
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        schedule.after_batch()
        loss_sum += loss.detach() * len(y)
        seen += len(y)
        if step % DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    mean_loss = loss_sum.item() / max(seen, 1)
    return mean_loss, seen, time.perf_counter() - start, not math.isfinite(mean_loss), lr
