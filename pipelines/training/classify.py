"""The trainer: a plain function of a validated config and the data.

It runs without Ray. Whoever runs it hands in `report(metrics, state)`, called
once per epoch with the epoch's metrics and a checkpointable state dict (its
tensors are live: save it during the call), and optionally a `resume_state`
loaded from such a save, to continue rather than restart. `probe` measures what
a configuration costs (parameters, one step's peak memory) before it trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from pipelines.data.images import ImageInfo, TrainValData
from pipelines.training.augmentation import augment
from pipelines.training.config import BaseConfig, TrainConfig
from pipelines.training.cost import Cost, count_params, measure_step_mb
from pipelines.training.identity_init import dirac_init
from pipelines.training.loop import (
    LOSS_WINDOWS,
    EpochStats,
    LossOf,
    Metrics,
    Report,
    State,
    TrainResult,
    autocast,
    default_device,
    fast_model,
    fit,
    run_steps,
)
from pipelines.training.lr_schedules import LRSchedule
from pipelines.training.optim import build_optimizer
from pipelines.training.whitening import (
    MOMENT_BATCH,
    WHITEN_IMAGES,
    first_conv,
    whiten_first_conv,
)

EVAL_BATCH = 1024


def _normaliser(info: ImageInfo, device: torch.device
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 NHWC to float NCHW normalised by the training images' per-channel mean
    and std (`info`), on the device (channels_last memory: the permute is a view)."""
    mean = torch.tensor(info.mean, device=device)[None, :, None, None]
    std = torch.tensor(info.std, device=device)[None, :, None, None]

    def normalise(images_nhwc: torch.Tensor) -> torch.Tensor:
        return (images_nhwc.permute(0, 3, 1, 2).float().div_(255) - mean) / std

    return normalise


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


def batches(data: TrainValData, idx: np.ndarray, batch_size: int, device: torch.device,
             order: torch.Tensor | None = None, resident: Resident | None = None,
             mirror: torch.Tensor | None = None
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, labels) batches of `idx` (sorted), in `order` if given.
    Batches read from the memory-mapped pool (sorted reads keep them sequential
    on disk), or from `resident` tensors: the same batches either way. `mirror`
    (bool, one per position of `idx`): the images to mirror left-right."""
    positions = np.arange(len(idx)) if order is None else order.numpy()
    normalise = _normaliser(data.info, device)
    for start in range(0, len(idx), batch_size):
        chunk = np.sort(positions[start:start + batch_size])
        if resident is not None:
            at = torch.from_numpy(chunk).to(device, non_blocking=True)
            x, y = normalise(resident.images[at]), resident.labels[at]
        else:
            rows = idx[chunk]
            x = normalise(torch.from_numpy(data.images[rows]).to(device, non_blocking=True))
            y = torch.from_numpy(data.labels[rows]).to(device, non_blocking=True)
        if mirror is not None:
            flip = mirror[torch.from_numpy(chunk)].to(device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        yield x, y


def shifted_views(x: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`x` (N, C, H, W) moved `shift` pixels down-right and up-left, the edges
    reflected (repeated where the image is too small to reflect that far)."""
    h, w = x.shape[-2:]
    mode = "reflect" if shift < min(h, w) else "replicate"
    padded = F.pad(x, (shift,) * 4, mode=mode)
    return padded[..., :h, :w], padded[..., 2 * shift:, 2 * shift:]


def tta_logits(model: torch.nn.Module, x: torch.Tensor, cfg: BaseConfig | None
               ) -> torch.Tensor:
    """The logits `cfg`'s test-time augmentation scores (float): the image's, or the
    mean of its and its mirror's (`tta`); with `tta_shift`, half those and a quarter
    each of the same for the two shifted views (airbench94's level 2)."""
    flip = getattr(cfg, "tta", False)

    def scored(v: torch.Tensor) -> torch.Tensor:
        logits = model(v).float()
        return (logits + model(v.flip(3)).float()) / 2 if flip else logits

    shift = getattr(cfg, "tta_shift", 0)
    if not shift:
        return scored(x)
    down_right, up_left = shifted_views(x, shift)
    return scored(x) / 2 + (scored(down_right) + scored(up_left)) / 4


def use_resident(device: torch.device) -> bool:
    """On a GPU the split lives on the device; on a CPU every trial reads the one
    memory-mapped copy the page cache shares (a copy per trial would multiply it)."""
    return device.type == "cuda"


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TrainValData, device: torch.device,
             resident: Resident | None = None,
             cfg: BaseConfig | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the validation split (NaN if it is empty);
    under `cfg`'s autocast and test-time augmentation (`tta`, `tta_shift`) if given."""
    if len(data.val_idx) == 0:
        return math.nan, math.nan
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in batches(data, data.val_idx, EVAL_BATCH, device, resident=resident):
        with autocast(cfg, device) if cfg else contextlib.nullcontext():
            logits = tta_logits(model, x, cfg)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = len(data.val_idx)
    return loss_sum.item() / n, correct.item() / n


def train(cfg: TrainConfig, data: TrainValData, *, report: Report | None = None,
          resume_state: State | None = None, device: torch.device | None = None,
          resident: bool | None = None, cost: Cost | None = None,
          monitor: tuple[str, str] | None = None,
          loss_windows: int = LOSS_WINDOWS) -> TrainResult:
    """Train `cfg.epochs` epochs (from `resume_state`'s epoch if given); stop at
    once if the loss becomes NaN or infinite. With an empty validation split
    (a final training run on every training image) the validation metrics are
    NaN and a plateau schedule follows the training loss. `resident`: keep the
    split on the device (default: on a GPU; see `use_resident`). `cost`: what
    `probe` measured, reported with every epoch (None: probed here first).
    `monitor`: the (metric, mode) `cfg.patience` watches (default: val_acc, max).
    `loss_windows`: step windows per epoch whose training loss the reports carry
    (steps.parquet; 0: none, as bench.throughput compares)."""
    cfg.validate()  # a TrainConfig built directly, not by from_dict, is checked too
    device = device or default_device()
    cost = cost if cost is not None else probe(cfg, data, device)
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg, data.info, device)
    if cfg.whiten:  # also before a resume's load, which restores the weights, not the freeze
        whiten_first_conv(model, (images for images, _ in batches(
            data, data.train_idx[:WHITEN_IMAGES], MOMENT_BATCH, device)))
    net = fast_model(model, cfg, device)
    on_device = use_resident(device) if resident is None else resident
    train_split = Resident.of(data, data.train_idx, device) if on_device else None
    val_split = Resident.of(data, data.val_idx, device) if on_device else None

    def validate_epoch() -> Metrics:
        val_loss, val_acc = evaluate(net, data, device, val_split, cfg)
        return {"val_loss": val_loss, "val_acc": val_acc}

    return fit(cfg, model, len(data.train_idx), device, score="val_acc",
               train_epoch=functools.partial(_train_epoch, net, cfg=cfg, data=data,
                                             device=device, resident=train_split,
                                             windows=loss_windows),
               validate_epoch=validate_epoch, report=report, resume_state=resume_state,
               cost=cost, val_images=len(data.val_idx), monitor=monitor)


def epoch_images(cfg: TrainConfig, data: TrainValData) -> int:
    """Training images per epoch: the split's (the largest batch worth trying)."""
    return len(data.train_idx)


def build_classifier(cfg: TrainConfig, info: ImageInfo, device: torch.device
                     ) -> torch.nn.Module:
    """`cfg`'s model for images like `info`'s, on `device` (weights from torch's RNG;
    with `dirac_init`, its convolutions then start as the identity)."""
    model = build_model(cfg.model, num_classes=info.num_classes, in_channels=info.channels,
                        image_size=info.image_size, **cfg.model_values()).to(device)
    if cfg.dirac_init:
        dirac_init(model)
    return model


def probe(cfg: TrainConfig, data: TrainValData, device: torch.device | None = None) -> Cost:
    """What `cfg` costs before it trains: its model's trainable parameters, and the
    peak memory (pipelines.training.cost) of one training step at `cfg.batch_size`
    on the first training images (all of them if there are fewer): the model built
    as `train` builds it, its optimizer, the batch gathered and augmented, forward
    under `cfg`'s autocast, loss, backward and optimizer step. The split's images
    themselves (memory-mapped, or resident on a GPU) are not part of it. The step
    runs on a model of its own (not compiled), after an unmeasured one at a tiny
    batch (cost.measure_step_mb), with the caller's RNG state left as it was."""
    device = device or default_device()
    idx = data.train_idx[:cfg.batch_size]
    uncompiled = dataclasses.replace(cfg, compile=False)  # minutes of compiling: not here
    params = 0

    def step(batch_size: int) -> None:
        nonlocal params
        generator = torch.Generator().manual_seed(cfg.seed)
        model = build_classifier(cfg, data.info, device)
        params = count_params(model)
        opt = build_optimizer(model, cfg)
        net = fast_model(model, uncompiled, device)
        x, y = next(batches(data, idx[:batch_size], batch_size, device))
        loss = classification_loss(net, cfg, device, generator, data.info)(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        peak = measure_step_mb(step, len(idx), device)
    return Cost(params, peak)


def classification_loss(model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                        generator: torch.Generator, info: ImageInfo) -> LossOf:
    """loss_of(x, y) of a training step: the batch (normalised by `info`'s mean and
    std) augmented, forward under `cfg`'s autocast, cross-entropy with `cfg`'s label
    smoothing. With `alternate_flip`, the batches come mirrored (epoch_mirror) and no
    flip is drawn here."""

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = augment(x, crop_padding=cfg.crop_padding, padding_mode=cfg.padding_mode,
                    flip_prob=0.0 if cfg.alternate_flip else cfg.flip_prob,
                    brightness=cfg.brightness, contrast=cfg.contrast, mean=info.mean,
                    std=info.std, generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)  # as fast_model's weights
        with autocast(cfg, device):
            logits = model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)

    return loss_of


def epoch_mirror(cfg: TrainConfig, images: int, epoch: int) -> torch.Tensor | None:
    """With `alternate_flip`, which of the training split's `images` are mirrored in
    `epoch` (from 1): in the first, each with `flip_prob`, drawn once from the seed
    (a generator of its own: the training order's stream is untouched), and in
    every later epoch the opposite of the one before. None without it."""
    if not cfg.alternate_flip:
        return None
    first = torch.rand(images, generator=torch.Generator().manual_seed(cfg.seed)) \
        < cfg.flip_prob
    return first if epoch % 2 else ~first


def _train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
                 generator: torch.Generator, epoch: int, *, cfg: TrainConfig,
                 data: TrainValData, device: torch.device, resident: Resident | None,
                 windows: int = LOSS_WINDOWS) -> EpochStats:
    """One pass over the training split (epoch from 1)."""
    if cfg.whiten and cfg.whiten_bias_epochs:
        bias = first_conv(model).bias
        if bias is not None:  # frozen after its epochs: no gradient, no step, no decay
            bias.requires_grad_(epoch <= cfg.whiten_bias_epochs)
    order = torch.randperm(len(data.train_idx), generator=generator)
    mirror = epoch_mirror(cfg, len(data.train_idx), epoch)
    return run_steps(model, opt, schedule, device,
                     classification_loss(model, cfg, device, generator, data.info),
                     batches(data, data.train_idx, cfg.batch_size, device, order, resident,
                             mirror),
                     l1=cfg.l1, steps=math.ceil(len(data.train_idx) / cfg.batch_size),
                     windows=windows)
