"""CIFAR ResNet (He et al. 2016, section 4.2): depth = 6n + 2 layers in three
stages of n basic blocks with `width`, 2*width and 4*width channels, then global
average pooling and the classification head (models/heads.py). Padded stride-2
convolutions round up, so any image of at least 1x1 pixel fits."""

from __future__ import annotations

import torch
from torch import nn

from models.activations import make_activation
from models.heads import head_layers
from models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, activation: str = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.act1, self.act2 = make_activation(activation), make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, depth: int = 20,
                 dropout: float = 0.0, in_channels: int = 3, activation: str = "relu",
                 fc_width: int = 0) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), "
                             f"got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            make_activation(activation, inplace=True),
        )
        layers, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(c_in, c_out, stride, activation))
                c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            *head_layers(c_in, num_classes, fc_width=fc_width, dropout=dropout,
                         activation=activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model("resnet")
def resnet(*, num_classes: int, in_channels: int, width: int, dropout: float,
           depth: int = 20, activation: str = "relu", fc_width: int = 0) -> nn.Module:
    return CifarResNet(num_classes=num_classes, width=width, depth=depth, dropout=dropout,
                       in_channels=in_channels, activation=activation, fc_width=fc_width)
