"""U-Net (Ronneberger et al. 2015) for segmentation: `depth` levels of two
3x3 conv + BatchNorm + activation (ReLU by default), `width` channels at the top level and twice as
many at each level below, max-pool down, transposed-conv up, skip connections
by concatenation, optional dropout at the bottleneck.

Padded convolutions, and an input of any size is padded to a multiple of
2**(depth-1) and the logits cropped back, so the output is the input's size.
The output is per-pixel logits: one channel for a binary mask (the positive
class; pair with BCE), `num_classes` channels otherwise (pair with softmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.activations import make_activation
from models.registry import register_model

DEFAULT_DEPTH = 4
DEPTHS = range(2, 7)  # levels, the top one included


def _double_conv(c_in: int, c_out: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        make_activation(activation, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        make_activation(activation, inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 16,
                 depth: int = DEFAULT_DEPTH, dropout: float = 0.0,
                 activation: str = "relu") -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unet depth must be in {DEPTHS.start}..{DEPTHS.stop - 1} "
                             f"(levels), got {depth}")
        channels = [width * 2 ** level for level in range(depth)]
        self.down = nn.ModuleList([_double_conv(in_channels, channels[0], activation)] + [
            _double_conv(c_in, c_out, activation)
            for c_in, c_out in zip(channels, channels[1:])])
        self.bottleneck_dropout = nn.Dropout2d(dropout)
        self.up = nn.ModuleList([nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
                                 for c_in, c_out in zip(channels[:0:-1], channels[-2::-1])])
        self.merge = nn.ModuleList([_double_conv(2 * c, c, activation)
                                    for c in channels[-2::-1]])
        self.head = nn.Conv2d(channels[0], 1 if num_classes == 2 else num_classes, 1)
        self.multiple = 2 ** (depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = self.bottleneck_dropout(skips.pop())
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)[..., :height, :width]


@register_model("unet", task="segmentation")
def unet(*, num_classes: int, in_channels: int, width: int, dropout: float,
         depth: int = DEFAULT_DEPTH, activation: str = "relu") -> nn.Module:
    return UNet(in_channels, num_classes, width, depth, dropout, activation)
