"""Segmentation losses and metrics.

Models give one logit per pixel for a binary mask (the probability of class
1 is its sigmoid) or one per class. Dice and IoU are computed per class from
pixel counts summed over every validation image (so a large image weighs
more than a small one), then averaged over the classes: `val_dice`,
`val_miou`. A class absent from both the prediction and the target scores 1
(nothing to find, nothing wrongly found).

Pixels whose target is `ignore_index` (a dataset's "don't care" pixels) count
in no loss and no metric: they weigh 0 in the losses (no gradient reaches
their logits) and are left out of the counts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

DICE_EPS = 1.0  # smoothing of the soft Dice loss, in pixels


def class_probs(logits: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) probabilities from binary (N, 1, H, W) or K-class logits."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return logits.softmax(dim=1)


def predict(logits: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class indices."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def _pixel_weights(target: torch.Tensor, ignore_index: int | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The target with ignored pixels set to class 0 (any class would do: they weigh
    nothing) and each pixel's weight, 1 or (ignored) 0."""
    if ignore_index is None:
        return target, torch.ones(target.shape, device=target.device)
    counted = target != ignore_index
    return target.masked_fill(~counted, 0), counted.float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                  ignore_index: int | None = None) -> torch.Tensor:
    """BCE for binary logits, softmax cross-entropy otherwise; mean per counted pixel."""
    target, weight = _pixel_weights(target, ignore_index)
    if logits.shape[1] == 1:
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0], target.float(),
                                                       reduction="none")
    else:
        per_pixel = F.cross_entropy(logits, target, reduction="none")
    return (per_pixel * weight).sum() / weight.sum().clamp(min=1)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor,
                   ignore_index: int | None = None) -> torch.Tensor:
    """1 - the soft Dice of the batch's counted pixels, averaged over the classes (so
    a thin minority class, such as membrane, counts as much as the majority)."""
    target, weight = _pixel_weights(target, ignore_index)
    probs = class_probs(logits) * weight[:, None]
    onehot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2) * weight[:, None]
    dims = (0, 2, 3)
    overlap = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * overlap + DICE_EPS) / (total + DICE_EPS)).mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor, loss: str,
             dice_weight: float, *, ignore_index: int | None = None) -> torch.Tensor:
    """The training loss `loss` (SEG_LOSSES of pipelines.training.config)."""
    if loss == "bce":
        return cross_entropy(logits, target, ignore_index)
    if loss == "dice":
        return soft_dice_loss(logits, target, ignore_index)
    return (1 - dice_weight) * cross_entropy(logits, target, ignore_index) + \
        dice_weight * soft_dice_loss(logits, target, ignore_index)


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
              ignore_index: int | None = None) -> torch.Tensor:
    """(K, K) pixel counts: row = true class, column = predicted class; pixels whose
    target is `ignore_index` are not counted."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    if ignore_index is not None:
        counted = target != ignore_index
        pred, target = pred[counted], target[counted]
    index = target.long() * num_classes + pred.long()
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def dice_and_iou(counts: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice (2TP / (2TP + FP + FN)) and IoU (TP / (TP + FP + FN))."""
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diag(counts)
    fp = counts.sum(0) - tp
    fn = counts.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(tp + fp + fn == 0, 1.0, 2 * tp / (2 * tp + fp + fn))
        iou = np.where(tp + fp + fn == 0, 1.0, tp / (tp + fp + fn))
    return dice, iou


def seg_scores(counts: np.ndarray | torch.Tensor, class_names: tuple[str, ...]
               ) -> dict[str, float]:
    """val_dice, val_miou (means over the classes), val_pixel_acc (the share of
    counted pixels predicted right; NaN without any) and val_dice_<class> for each."""
    counts = np.asarray(counts, dtype=np.float64)
    dice, iou = dice_and_iou(counts)
    total = counts.sum()
    return {"val_dice": float(dice.mean()), "val_miou": float(iou.mean()),
            "val_pixel_acc": float(np.trace(counts) / total) if total else math.nan,
            **{f"val_dice_{name}": float(d) for name, d in zip(class_names, dice)}}
