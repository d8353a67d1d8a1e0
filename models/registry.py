"""Model registry: a model is added by registering its factory, and is then
available to every sweep and covered by the registry-wide tests."""

from __future__ import annotations

from typing import Callable

from torch import nn

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}
_TASKS: dict[str, str] = {}  # model name -> "classification" | "segmentation"


def register_model(name: str, task: str = "classification"
                   ) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make `factory` buildable as `build_model(name, ...)`. A
    classification model maps images to class logits; a segmentation model
    takes `in_channels` too and maps images to per-pixel logits."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name], _TASKS[name] = factory, task
        return factory

    return add


def model_names(task: str | None = None) -> list[str]:
    """The registered models (of `task` if given), sorted."""
    return sorted(name for name in _MODELS if task is None or _TASKS[name] == task)


def build_model(
    name: str, *, num_classes: int, width: int, depth: int | None, dropout: float,
    **extra: object,
) -> nn.Module:
    """Build a registered model. `depth=None` means the model's own default;
    `extra`: model-specific arguments (a segmentation model's `in_channels`)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _MODELS[name](num_classes=num_classes, width=width, depth=depth, dropout=dropout,
                         **extra)
