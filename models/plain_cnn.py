"""A configurable VGG-style CNN: `depth` stages of conv-BN-ReLU + max-pool,
channels doubling per stage from `width`, then global average pooling.

Each stage halves the image, rounding up (ceil_mode), so five stages take an
8x8 image down to 1x1 as they take 32x32 (whose sizes are even at every stage)."""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),  # 1x1 stays 1x1
    )


class PlainCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32, depth: int = 3,
                 dropout: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        if not 1 <= depth <= 5:  # five stages take 32x32 to 1x1
            raise ValueError(f"plain_cnn depth must be 1..5 stages, got {depth}")
        channels = [in_channels] + [width * 2**i for i in range(depth)]
        self.features = nn.Sequential(
            *(_stage(c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(channels[-1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("plain_cnn")
def plain_cnn(*, num_classes: int, in_channels: int, width: int, dropout: float,
              depth: int = 3) -> nn.Module:
    return PlainCNN(num_classes=num_classes, width=width, depth=depth, dropout=dropout,
                    in_channels=in_channels)
