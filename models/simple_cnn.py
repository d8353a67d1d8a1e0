"""The seed model: one conv layer (3 -> width), max-pool, dropout, linear."""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 32x32 -> 16x16
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * 16 * 16, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("simple_cnn")
def simple_cnn(*, num_classes: int, width: int, depth: int | None, dropout: float) -> nn.Module:
    if depth not in (None, 1):
        raise ValueError(f"simple_cnn has exactly one conv layer; got depth={depth}, use depth=1")
    return SimpleCNN(num_classes=num_classes, width=width, dropout=dropout)
