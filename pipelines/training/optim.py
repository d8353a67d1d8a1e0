"""Optimizers by name, and the one place the sweep's learning rate (per 256
examples) becomes the optimizer's (`effective_lr`)."""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

import torch

__all__ = ["BETA2_OPTIMIZERS", "LR_REFERENCE_BATCH", "OPTIMIZERS", "OptimizerSettings",
           "build_optimizer", "effective_lr"]

LR_REFERENCE_BATCH = 256  # a config's `lr` is the learning rate per 256 examples

Params = Iterable[torch.nn.Parameter]


def effective_lr(lr_per_256: float, batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017), applied here and nowhere else:
    the optimizer's learning rate grows with the batch size, so a sweep searches
    lr in batch-independent units and batch size separately."""
    return lr_per_256 * batch_size / LR_REFERENCE_BATCH


class OptimizerSettings(Protocol):
    """What an optimizer reads of a config (every task's config has these)."""

    @property
    def optimizer(self) -> str: ...
    @property
    def lr(self) -> float: ...  # per 256 examples
    @property
    def batch_size(self) -> int: ...
    @property
    def momentum(self) -> float: ...  # SGD's momentum; Adam's and AdamW's beta1
    @property
    def beta2(self) -> float: ...  # Adam's and AdamW's second-moment decay
    @property
    def nesterov(self) -> bool: ...
    @property
    def weight_decay(self) -> float: ...


def _sgd(params: Params, cfg: OptimizerSettings, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def _adam(params: Params, cfg: OptimizerSettings, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=(cfg.momentum, cfg.beta2),
                            weight_decay=cfg.weight_decay)


def _adamw(params: Params, cfg: OptimizerSettings, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(cfg.momentum, cfg.beta2),
                             weight_decay=cfg.weight_decay)


OPTIMIZERS: dict[str, Callable[[Params, OptimizerSettings, float], torch.optim.Optimizer]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw,
}
BETA2_OPTIMIZERS = ("adam", "adamw")  # those that read a config's beta2


def build_optimizer(params: Params, cfg: OptimizerSettings) -> torch.optim.Optimizer:
    """`cfg.optimizer` over `params`, at the effective learning rate of `cfg.lr`."""
    return OPTIMIZERS[cfg.optimizer](params, cfg, effective_lr(cfg.lr, cfg.batch_size))
