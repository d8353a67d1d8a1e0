"""Optimizers by name, the one place the sweep's learning rate (per 256
examples) becomes the optimizer's (`effective_lr`), and a model's parameter
groups: BatchNorm biases at their own learning rate, BatchNorm scales frozen,
and weight decay decoupled from the learning rate (airbench's units)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

import torch

from pipelines.training.batch_norm import batch_norms

__all__ = ["BETA2_OPTIMIZERS", "DECOUPLED_WD_OPTIMIZERS", "LR_REFERENCE_BATCH",
           "OPTIMIZERS", "OptimizerSettings", "WD_REFERENCE_BATCH", "build_optimizer",
           "effective_lr", "param_groups"]

LR_REFERENCE_BATCH = 256  # a config's `lr` is the learning rate per 256 examples
WD_REFERENCE_BATCH = 1024  # a config's `decoupled_wd` is the decay per 1,024 examples

Params = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]


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
    @property
    def decoupled_wd(self) -> float: ...  # per 1,024 examples, at the schedule's peak
    @property
    def bn_bias_lr(self) -> float: ...  # BatchNorm biases' lr, a multiple of lr
    @property
    def freeze_bn_weights(self) -> bool: ...


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


DECOUPLED_WD_OPTIMIZERS = ("sgd", "adamw")  # whose decay is lr x weight_decay x w per step


def param_groups(model: torch.nn.Module, cfg: OptimizerSettings) -> list[dict[str, Any]]:
    """`model`'s parameters as optimizer groups at the effective lr: its
    BatchNorm biases at `cfg.bn_bias_lr` times it (airbench: 64), the rest at it.
    `cfg.freeze_bn_weights` freezes the BatchNorm scales where they are (1 at
    init). With `cfg.decoupled_wd`, each group's weight_decay is set so that at the
    schedule's peak a step of `batch_size` examples shrinks the weights by
    decoupled_wd x batch_size / 1024, whatever the group's lr (airbench's units;
    with momentum, as torch's SGD compounds it). Frozen parameters (whitening's)
    stay in the groups, in the order earlier checkpoints have; with no gradient
    they are neither stepped nor decayed."""
    lr = effective_lr(cfg.lr, cfg.batch_size)
    norms = batch_norms(model)
    if cfg.freeze_bn_weights:
        for norm in norms:
            if norm.weight is not None:
                norm.weight.requires_grad_(False)
    groups: list[dict[str, Any]]
    if cfg.bn_bias_lr == 1:  # one group in the model's order, as checkpoints before had it
        groups = [{"params": list(model.parameters()), "lr": lr}]
    else:
        biases = {id(n.bias) for n in norms if n.bias is not None}
        groups = [{"params": [p for p in model.parameters() if id(p) not in biases], "lr": lr},
                  {"params": [p for p in model.parameters() if id(p) in biases],
                   "lr": lr * cfg.bn_bias_lr}]
    for group in groups:
        if cfg.decoupled_wd:
            group["weight_decay"] = cfg.decoupled_wd * cfg.batch_size / WD_REFERENCE_BATCH \
                / group["lr"]
    return [g for g in groups if g["params"]]


def build_optimizer(params: Params | torch.nn.Module, cfg: OptimizerSettings
                    ) -> torch.optim.Optimizer:
    """`cfg.optimizer` over `params` (a model: its `param_groups`), at the effective
    learning rate of `cfg.lr`."""
    if isinstance(params, torch.nn.Module):
        params = param_groups(params, cfg)
    elif cfg.decoupled_wd or cfg.bn_bias_lr != 1 or cfg.freeze_bn_weights:
        raise ValueError("decoupled_wd, bn_bias_lr and freeze_bn_weights need the model: "
                         "call build_optimizer(model, cfg)")
    return OPTIMIZERS[cfg.optimizer](params, cfg, effective_lr(cfg.lr, cfg.batch_size))
