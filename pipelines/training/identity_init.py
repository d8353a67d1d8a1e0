"""airbench's identity initialisation: each convolution starts close to passing its
input through, an implicit residual connection for a net that has none. The first
min(out, in) filters of every (ungrouped) convolution become a Dirac delta on their
own input channel at the kernel's centre; the other filters keep the model's init."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["dirac_init"]


@torch.no_grad()
def dirac_init(model: nn.Module) -> int:
    """Set every ungrouped nn.Conv2d of `model` to the identity on its first
    min(out_channels, in_channels) filters (torch.nn.init.dirac_); how many
    convolutions it set. Draws no random numbers."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            weight = module.weight
            nn.init.dirac_(weight[:weight.shape[1]])
            count += 1
    return count
