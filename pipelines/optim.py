"""Optimizers by name, and the one place where the linear scaling rule lives."""

from __future__ import annotations

from typing import Callable

import torch

from pipelines.config import TrainConfig

LR_REFERENCE_BATCH = 256  # `TrainConfig.lr` is the learning rate per 256 examples


def effective_lr(lr_per_256: float, batch_size: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): lr grows with the batch size."""
    return lr_per_256 * batch_size / LR_REFERENCE_BATCH


def _sgd(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def _adam(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=(cfg.momentum, 0.999),
                            weight_decay=cfg.weight_decay)


def _adamw(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(cfg.momentum, 0.999),
                             weight_decay=cfg.weight_decay)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw,
}


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](params, cfg, effective_lr(cfg.lr, cfg.batch_size))
