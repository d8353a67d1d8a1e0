"""A configurable VGG-style CNN: `depth` stages of conv-BN-activation + max-pool,
channels doubling per stage from `width`, then global average pooling and the
classification head (models/heads.py).

Each stage halves the image, rounding up (ceil_mode), so five stages take an
8x8 image down to 1x1 as they take 32x32 (whose sizes are even at every stage)."""

from __future__ import annotations

import torch
from torch import nn

from models.activations import make_activation
from models.heads import head_layers
from models.registry import register_model


def _stage(c_in: int, c_out: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        make_activation(activation, inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),  # 1x1 stays 1x1
    )


class PlainCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32, depth: int = 3,
                 dropout: float = 0.0, in_channels: int = 3, activation: str = "relu",
                 fc_width: int = 0) -> None:
        super().__init__()
        if not 1 <= depth <= 5:  # five stages take 32x32 to 1x1
            raise ValueError(f"plain_cnn depth must be 1..5 stages, got {depth}")
        channels = [in_channels] + [width * 2**i for i in range(depth)]
        self.features = nn.Sequential(
            *(_stage(c_in, c_out, activation) for c_in, c_out in zip(channels, channels[1:]))
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            *head_layers(channels[-1], num_classes, fc_width=fc_width, dropout=dropout,
                         activation=activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("plain_cnn")
def plain_cnn(*, num_classes: int, in_channels: int, width: int, dropout: float,
              depth: int = 3, activation: str = "relu", fc_width: int = 0) -> nn.Module:
    return PlainCNN(num_classes=num_classes, width=width, depth=depth, dropout=dropout,
                    in_channels=in_channels, activation=activation, fc_width=fc_width)
