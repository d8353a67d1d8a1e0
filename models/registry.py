"""Model registry: a model is added by registering its factory, and is then
available to every sweep and covered by the registry-wide tests."""

from __future__ import annotations

from typing import Callable

from torch import nn

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make `factory` buildable as `build_model(name, ...)`."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return add


def model_names() -> list[str]:
    return sorted(_MODELS)


def build_model(
    name: str, *, num_classes: int, width: int, depth: int | None, dropout: float
) -> nn.Module:
    """Build a registered model. `depth=None` means the model's own default."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _MODELS[name](num_classes=num_classes, width=width, depth=depth, dropout=dropout)
