"""torchvision's classification models by name (`torchvision:resnet18`),
randomly initialised, with the first convolution taking `in_channels`, and
sized for the images where the model takes `image_size` (ViT: one int, so
square images only). width, depth and dropout are not passed: the builder's
own architecture and dropout stand.

torchvision is imported when a model is asked for, not when this module is."""

from __future__ import annotations

import inspect
from typing import Any, Callable

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

    def build(*, num_classes: int, in_channels: int = 3,
              image_size: tuple[int, int] = (224, 224)) -> nn.Module:
        import torchvision

        builder = torchvision.models.get_model_builder(name)
        sized = size_kwargs(name, builder, image_size)
        # the builder sizes the classifier head for num_classes; weights=None: random init
        model = builder(weights=None, num_classes=num_classes, **sized)
        return with_in_channels(model, in_channels)

    return build


def size_kwargs(name: str, builder: Callable[..., nn.Module], image_size: tuple[int, int]
                ) -> dict[str, object]:
    """`{"image_size": ...}` if the model `builder` builds takes an image_size
    (an int for a square one: H == W is required), else nothing. A builder takes
    `**kwargs` for its model class, so the class's signature (the builder's return
    annotation) says what it takes."""
    model_class = inspect.signature(builder).return_annotation
    if not inspect.isclass(model_class):
        return {}
    param = inspect.signature(model_class).parameters.get("image_size")
    if param is None:
        return {}
    height, width = image_size
    if param.annotation not in (int, "int"):
        return {"image_size": (height, width)}
    if height != width:
        raise ValueError(f"torchvision model {name!r} takes square images only (one int "
                         f"image_size); got {height}x{width} (HxW): resize them to a square")
    return {"image_size": height}


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
