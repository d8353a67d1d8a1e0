"""Model factories as a user's own package holds them, built by import path
(`tests.models.user_models:tiny_net`) in the tests of models/resolve.py."""

from __future__ import annotations

from torch import nn

NOT_A_FACTORY = 42


def tiny_net(num_classes: int, in_channels: int, image_size: tuple[int, int],
             width: int = 16) -> nn.Module:
    """One conv of `width` channels and a linear head sized for `image_size`."""
    height, width_px = image_size
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(width * height * width_px, num_classes))


def stacked_net(num_classes: int, in_channels: int, depth: int = 3) -> nn.Module:
    """`depth` 3x3 convs of 8 channels, global average pooling, a linear head."""
    convs = [nn.Conv2d(in_channels if i == 0 else 8, 8, 3, padding=1) for i in range(depth)]
    return nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def any_args_net(num_classes: int, **kwargs: object) -> nn.Module:
    """A `**kwargs` factory: it is handed every argument and uses none but num_classes."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(num_classes))


def no_classes(in_channels: int, width: int) -> nn.Module:
    return nn.Conv2d(in_channels, width, 3)


def needs_foo(num_classes: int, foo: int) -> nn.Module:
    return nn.Linear(foo, num_classes)


def activated_net(num_classes: int, in_channels: int, activation: str = "tanh") -> nn.Module:
    """A factory naming `activation`: it gets the config's, or keeps its own (tanh)."""
    from models import make_activation

    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), make_activation(activation),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
