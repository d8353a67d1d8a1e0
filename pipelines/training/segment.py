"""The segmentation trainer: a registered segmentation model (the U-Net) on
random crops of the training images, scored on whole validation images.

Like `pipelines.training.classify.train` it is a plain function that runs without Ray,
with the same report/checkpoint protocol and epoch loop (`loop.fit`). An
epoch is as many crops as cover the training images' pixels once. The
training images live on the device as uint8 and are cropped and augmented in
batches there. A dataset's ignored pixels count in neither the loss nor the scores.
`probe_segmentation` measures what a configuration costs before it trains.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Iterator

import numpy as np
import torch

from models import build_model
from pipelines.data.seg_folder import SegData
from pipelines.training.augmentation import augment_pairs
from pipelines.training.config import SegConfig
from pipelines.training.cost import Cost, count_params, measure_step_mb
from pipelines.training.loop import (
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
from pipelines.training.seg_metrics import confusion, predict, seg_loss, seg_scores

SCORE = "val_miou"  # what the checkpoint's "best" follows


def train_segmentation(cfg: SegConfig, data: SegData, *, report: Report | None = None,
                       resume_state: State | None = None, device: torch.device | None = None,
                       cost: Cost | None = None,
                       monitor: tuple[str, str] | None = None) -> TrainResult:
    """Train `cfg.epochs` epochs of random crops (from `resume_state`'s epoch if
    given), scoring the whole validation images after each; the report protocol
    is classify.train's. `cost`: what `probe_segmentation` measured (None: probed
    here first). `monitor`: what `cfg.patience` watches (default: val_miou, max)."""
    cfg.validate()
    device = device or default_device()
    cost = cost if cost is not None else probe_segmentation(cfg, data, device)
    torch.manual_seed(cfg.seed)
    model = build_segmenter(cfg, data, device)
    images, masks = _on_device(data, data.train_idx, device)
    mean, std = _intensity(images)
    crop, crops = crop_size(cfg, data), epoch_crops(cfg, data)
    net = fast_model(model, cfg, device)
    return fit(cfg, model, crops, device, score=SCORE,
               train_epoch=functools.partial(
                   _train_epoch, net, cfg=cfg, images=images, masks=masks, crops=crops,
                   crop=crop, normalise=functools.partial(_normalise, mean=mean, std=std),
                   ignore_index=data.ignore_index, device=device),
               validate_epoch=functools.partial(evaluate_segmentation, net, data, cfg, mean,
                                                std, device),
               report=report, resume_state=resume_state, cost=cost,
               val_images=len(data.val_idx), monitor=monitor)


def build_segmenter(cfg: SegConfig, data: SegData, device: torch.device) -> torch.nn.Module:
    """`cfg`'s segmentation model for `data`'s images, on `device`."""
    channels, height, width = data.images.shape[1:]
    return build_model(cfg.model, task="segmentation", num_classes=len(data.class_names),
                       in_channels=channels, image_size=(height, width),
                       **cfg.model_values()).to(device)


def crop_size(cfg: SegConfig, data: SegData) -> int:
    """The training crops' side in pixels: cfg.crop_size, or less for smaller images."""
    return min(cfg.crop_size, *data.images.shape[-2:])


def epoch_crops(cfg: SegConfig, data: SegData) -> int:
    """Crops per epoch: as many as cover the training images' pixels once."""
    height, width = data.images.shape[-2:]
    return math.ceil(len(data.train_idx) * height * width / crop_size(cfg, data) ** 2)


def probe_segmentation(cfg: SegConfig, data: SegData,
                       device: torch.device | None = None) -> Cost:
    """What `cfg` costs before it trains: as classify.probe, for one step of
    `cfg.batch_size` random crops of the first training images (up to a batch of
    them; the images on the device are not part of the peak)."""
    device = device or default_device()
    images, masks = _on_device(data, data.train_idx[:cfg.batch_size], device)
    mean, std = _intensity(images)
    crop = crop_size(cfg, data)
    uncompiled = dataclasses.replace(cfg, compile=False)  # minutes of compiling: not here
    params = 0

    def step(batch_size: int) -> None:
        nonlocal params
        generator = torch.Generator().manual_seed(cfg.seed)
        model = build_segmenter(cfg, data, device)
        params = count_params(model)
        opt = build_optimizer(model, cfg)
        net = fast_model(model, uncompiled, device)
        x, y = next(random_crops(images, masks, batch_size, crop, batch_size, generator))
        loss_of = segmentation_loss(net, cfg, functools.partial(_normalise, mean=mean, std=std),
                                    data.ignore_index, device, generator)
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        peak = measure_step_mb(step, cfg.batch_size, device)
    return Cost(params, peak)


def _on_device(data: SegData, idx: np.ndarray, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.ascontiguousarray(data.images[idx])).to(device),
            torch.from_numpy(np.ascontiguousarray(data.masks[idx])).to(device))


def _intensity(images: torch.Tensor) -> tuple[float, float]:
    x = images.float().div_(255)
    return float(x.mean()), float(x.std()) or 1.0


def _normalise(x: torch.Tensor, *, mean: float, std: float) -> torch.Tensor:
    return (x - mean) / std


def segmentation_loss(model: torch.nn.Module, cfg: SegConfig,
                      normalise: Callable[[torch.Tensor], torch.Tensor],
                      ignore_index: int | None, device: torch.device,
                      generator: torch.Generator) -> LossOf:
    """loss_of(x, y) of a training step: the crops and masks augmented together,
    forward under `cfg`'s autocast, `cfg`'s loss without the ignored pixels."""

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = augment_pairs(x.float().div_(255), y.long(), flip_prob=cfg.flip_prob,
                             rot90_prob=cfg.rot90_prob, jitter=cfg.jitter,
                             generator=generator)
        with autocast(cfg, device):
            logits = model(normalise(x))
        return seg_loss(logits.float(), y, cfg.loss, cfg.dice_weight,
                        ignore_index=ignore_index)

    return loss_of


def _train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
                 generator: torch.Generator, epoch: int, *, cfg: SegConfig, images: torch.Tensor,
                 masks: torch.Tensor, crops: int, crop: int,
                 normalise: Callable[[torch.Tensor], torch.Tensor],
                 ignore_index: int | None, device: torch.device) -> EpochStats:
    return run_steps(model, opt, schedule, device,
                     segmentation_loss(model, cfg, normalise, ignore_index, device, generator),
                     random_crops(images, masks, crops, crop, cfg.batch_size, generator),
                     l1=cfg.l1, steps=math.ceil(crops / cfg.batch_size))


def random_crops(images: torch.Tensor, masks: torch.Tensor, count: int, crop: int,
                 batch_size: int, generator: torch.Generator
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`count` square crops at uniformly random images and offsets, in batches."""
    n, _, height, width = images.shape
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        which = torch.randint(n, (size,), generator=generator).tolist()
        top = torch.randint(height - crop + 1, (size,), generator=generator).tolist()
        left = torch.randint(width - crop + 1, (size,), generator=generator).tolist()
        yield (torch.stack([images[i, :, y:y + crop, x:x + crop]
                            for i, y, x in zip(which, top, left)]),
               torch.stack([masks[i, y:y + crop, x:x + crop]
                            for i, y, x in zip(which, top, left)]))


@torch.no_grad()
def evaluate_segmentation(model: torch.nn.Module, data: SegData, cfg: SegConfig, mean: float,
                          std: float, device: torch.device) -> Metrics:
    """val_loss, val_dice, val_miou, val_pixel_acc and val_dice_<class> on the whole
    validation images, one at a time (full-size inference, no crops), ignored pixels
    left out; NaN without any images."""
    names = data.class_names
    if len(data.val_idx) == 0:
        return {"val_loss": math.nan, **{k: math.nan for k in seg_scores(
            np.eye(len(names)), names)}}
    model.eval()
    counts = torch.zeros((len(names), len(names)), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    for i in data.val_idx:
        x = torch.from_numpy(np.array(data.images[i:i + 1])).to(device)
        y = torch.from_numpy(np.array(data.masks[i:i + 1])).to(device).long()
        with autocast(cfg, device):
            logits = model(_normalise(x.float().div_(255), mean=mean, std=std)).float()
        loss_sum += seg_loss(logits, y, cfg.loss, cfg.dice_weight,
                             ignore_index=data.ignore_index)
        counts += confusion(predict(logits), y, len(names), data.ignore_index)
    return {"val_loss": loss_sum.item() / len(data.val_idx),
            **seg_scores(counts.cpu().numpy(), names)}
