"""A fast CIFAR-10 net in the spirit of airbench94 (Keller Jordan 2024,
github.com/KellerJordan/cifar10-airbench): a 2x2-patch conv stem, three conv
groups (conv, max-pool, BatchNorm, GELU, conv, BatchNorm, GELU) of `width`,
4 * `width` and 4 * `width` channels (airbench: 64, 256, 256), a global
max-pool and a linear head scaled by 1/9.

airbench's data-dependent whitening of the stem and its Lookahead optimizer
are not reproduced; the net trains with this pipeline's optimizers and
schedules like any other registered model. Its test-time flipping is the
trainer's `tta` option, which search_spaces/cifar_fast.py turns on.
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model

STEM_CHANNELS = 24
HEAD_SCALE = 1 / 9


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding="same", bias=False), nn.MaxPool2d(2),
            nn.BatchNorm2d(c_out), nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding="same", bias=False),
            nn.BatchNorm2d(c_out), nn.GELU(),
        )


class AirbenchNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        widths = (width, 4 * width, 4 * width)
        self.features = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 2), nn.GELU(),
            ConvGroup(STEM_CHANNELS, widths[0]), ConvGroup(widths[0], widths[1]),
            ConvGroup(widths[1], widths[2]),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x))) * HEAD_SCALE


@register_model("airbench")
def airbench(*, num_classes: int, width: int, depth: int | None, dropout: float) -> nn.Module:
    if depth is not None:
        raise ValueError(f"airbench has a fixed depth; got depth={depth}, pass None")
    return AirbenchNet(num_classes, width, dropout)
