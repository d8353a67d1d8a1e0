"""A model's BatchNorm layers, which airbench's recipe treats apart: their
running-statistics momentum (`set_bn_momentum`), and their biases and scales in
the optimizer (optim.param_groups)."""

from __future__ import annotations

import torch

__all__ = ["BATCH_NORMS", "batch_norms", "set_bn_momentum"]

BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
               torch.nn.SyncBatchNorm)


def batch_norms(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._NormBase]:
    """Every BatchNorm layer of `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS)]


def set_bn_momentum(model: torch.nn.Module, momentum: float | None) -> int:
    """Every BatchNorm of `model` keeps running statistics at `momentum` (torch's sense);
    None leaves the model's own. How many BatchNorms it set."""
    if momentum is None:
        return 0
    norms = batch_norms(model)
    for norm in norms:
        norm.momentum = momentum
    return len(norms)
