"""A fast CIFAR-10 net in the spirit of airbench94 (Keller Jordan 2024,
github.com/KellerJordan/cifar10-airbench): a 2x2-patch conv stem, three conv
groups (conv, max-pool, BatchNorm, GELU, conv, BatchNorm, GELU) of `width`,
4 * `width` and 4 * `width` channels (airbench: 64, 256, 256), a global
max-pool and a linear head scaled by 1/9 (models/heads.py: optionally after a
hidden layer of `fc_width`). `activation` replaces every GELU, airbench's default.

airbench's other pieces are the trainer's options, for any model: `whiten` and
`whiten_bias_epochs` (the stem whitens the training patches, frozen: 24 = 2 x
2x2x3 filters on RGB images), `dirac_init` (its identity init), `lookahead_k`
with `lookahead_start` and `lookahead_ramp`, `bn_bias_lr` and
`freeze_bn_weights`, `bn_momentum`, `decoupled_wd`, the `triangle` schedule,
`alternate_flip`, `padding_mode` "reflect", and the test-time views `tta` (the
mirror, which search_spaces/cifar_fast.py turns on) and `tta_shift`
(pipelines/training/config.py). Its BatchNorm eps of 1e-12 is torch's 1e-5 here.

Images smaller than airbench's 32x32 skip a max-pool along a side that is
already 1 pixel, so 8x8 images fit; at 32x32 every pool halves, as in airbench.
"""

from __future__ import annotations

import torch
from torch import nn

from models.activations import make_activation
from models.heads import head_layers
from models.registry import register_model

STEM_CHANNELS = 24
HEAD_SCALE = 1 / 9


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int] = (2, 2),
                 activation: str = "gelu") -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding="same", bias=False), nn.MaxPool2d(pool),
            nn.BatchNorm2d(c_out), make_activation(activation),
            nn.Conv2d(c_out, c_out, 3, padding="same", bias=False),
            nn.BatchNorm2d(c_out), make_activation(activation),
        )


class AirbenchNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64, dropout: float = 0.0,
                 in_channels: int = 3, image_size: tuple[int, int] = (32, 32),
                 activation: str = "gelu", fc_width: int = 0) -> None:
        super().__init__()
        widths = (width, 4 * width, 4 * width)
        stem = nn.Conv2d(in_channels, STEM_CHANNELS, 2)  # first, so a seed inits as it always did
        size = (image_size[0] - 1, image_size[1] - 1)  # pixels after the unpadded 2x2 stem
        groups = []
        for c_in, c_out in zip((STEM_CHANNELS, *widths), widths):
            pool = (min(2, size[0]), min(2, size[1]))  # 1 along a side of 1 pixel: no pooling
            groups.append(ConvGroup(c_in, c_out, pool, activation))
            size = (size[0] // pool[0], size[1] // pool[1])
        self.features = nn.Sequential(
            stem, make_activation(activation), *groups,
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        *hidden, self.dropout, self.head = head_layers(
            widths[2], num_classes, fc_width=fc_width, dropout=dropout, activation=activation,
            bias=False)
        self.hidden = nn.Sequential(*hidden)  # empty (the identity) without fc_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.hidden(self.features(x)))) * HEAD_SCALE


@register_model("airbench")
def airbench(*, num_classes: int, in_channels: int, image_size: tuple[int, int], width: int,
             dropout: float, depth: int | None = None, activation: str = "gelu",
             fc_width: int = 0) -> nn.Module:
    if depth is not None:
        raise ValueError(f"airbench has a fixed depth; got depth={depth}, pass None")
    return AirbenchNet(num_classes, width, dropout, in_channels, image_size, activation,
                       fc_width)
