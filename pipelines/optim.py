"""Optimizers by name; each gets the effective learning rate (config.effective_lr)."""

from __future__ import annotations

from typing import Callable

import torch

from pipelines.config import LR_REFERENCE_BATCH, TrainConfig, effective_lr

__all__ = ["LR_REFERENCE_BATCH", "OPTIMIZERS", "build_optimizer", "effective_lr"]

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
