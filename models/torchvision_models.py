"""torchvision's classification models by name (`torchvision:resnet18`),
randomly initialised, with the first convolution taking `in_channels`.

torchvision is imported when a model is asked for, not when this module is."""

from __future__ import annotations

from typing import Any

from torch import nn

from models.registry import ModelFactory

CONV_OPTIONS = ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode")
LIST_HINT = ("python -c 'import torchvision as tv; "
             "print(tv.models.list_models(module=tv.models))'")


def torchvision_names() -> list[str]:
    """torchvision's classification model names (list_models of torchvision.models)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def torchvision_factory(name: str) -> ModelFactory:
    """A factory building torchvision's model `name`; an unknown name is an error."""
    if name not in torchvision_names():
        raise ValueError(f"unknown torchvision model {name!r}; list the names with {LIST_HINT}")

    def build(*, num_classes: int, in_channels: int = 3) -> nn.Module:
        import torchvision

        # the builder sizes the classifier head for num_classes; weights=None: random init
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        return with_in_channels(model, in_channels)

    return build


def with_in_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """`model` with its first nn.Conv2d replaced by a fresh one taking
    `in_channels` (all else the same), if it takes another count."""
    path, conv = next(((p, m) for p, m in model.named_modules() if isinstance(m, nn.Conv2d)),
                      ("", None))
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d to take {in_channels} channels")
    if conv.in_channels == in_channels:
        return model
    same: dict[str, Any] = {key: getattr(conv, key) for key in CONV_OPTIONS}
    new = nn.Conv2d(in_channels, conv.out_channels, bias=conv.bias is not None, **same)
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)
    return model
