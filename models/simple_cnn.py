"""The seed model: one conv layer (in_channels -> width), activation, max-pool,
then the classification head (models/heads.py: dropout and a linear layer, or a
hidden layer of `fc_width` first).

The head is sized for `image_size`, so the model takes images of that size only."""

from __future__ import annotations

import torch
from torch import nn

from models.activations import make_activation
from models.heads import head_layers
from models.registry import register_model


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.0,
                 in_channels: int = 3, image_size: tuple[int, int] = (32, 32),
                 activation: str = "relu", fc_width: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            make_activation(activation, inplace=True),
            nn.MaxPool2d(2),  # 32x32 -> 16x16
        )
        pooled = (image_size[0] // 2) * (image_size[1] // 2)  # pixels after the max-pool
        self.head = nn.Sequential(
            nn.Flatten(), *head_layers(width * pooled, num_classes, fc_width=fc_width,
                                       dropout=dropout, activation=activation)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("simple_cnn")
def simple_cnn(*, num_classes: int, in_channels: int, image_size: tuple[int, int], width: int,
               dropout: float, depth: int = 1, activation: str = "relu",
               fc_width: int = 0) -> nn.Module:
    if depth != 1:
        raise ValueError(f"simple_cnn has exactly one conv layer; got depth={depth}, use depth=1")
    return SimpleCNN(num_classes=num_classes, width=width, dropout=dropout,
                     in_channels=in_channels, image_size=image_size, activation=activation,
                     fc_width=fc_width)
